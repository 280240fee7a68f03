"""``framesift run`` honours the config's ``log:`` block; a command-line flag wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from framesift.samples import ClipInfo

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    ("flags", "expect_json"),
    [
        ((), True),  # the config says json
        (("--log-format", "plain"), False),  # flag after the subcommand wins
        (("GLOBAL", "--log-format", "plain"), False),  # global flag wins too
    ],
)
def test_config_log_block_and_flag_precedence(
    make_clip: Callable[..., ClipInfo], tmp_path: Path, flags: tuple[str, ...], expect_json: bool
) -> None:
    clip = make_clip(segments=(5,), width=160, height=120)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"sources:\n  - {{type: file, path: '{clip.path}'}}\nmetrics: {{port: 0}}\n"
        "log: {level: debug, format: json}\n"
    )
    if flags and flags[0] == "GLOBAL":
        err = _run(*flags[1:], "run", str(cfg), "--no-progress")
    else:
        err = _run("run", str(cfg), "--no-progress", *flags)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines
    parsed = []
    for ln in lines:
        try:
            parsed.append(json.loads(ln))
        except ValueError:
            parsed.append(None)
    if expect_json:
        assert all(isinstance(p, dict) for p in parsed), err
        assert any(p["level"] == "debug" for p in parsed)  # the config's level too
    else:
        assert not any(isinstance(p, dict) for p in parsed), err
        assert " DEBUG " in err  # the level still comes from the config

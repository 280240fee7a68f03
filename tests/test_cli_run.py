"""``framesift run`` as a user runs it (a subprocess): exit codes, events written, signals drain."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from framesift.samples import ClipInfo

ROOT = Path(__file__).resolve().parent.parent


def framesift(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[str]:
    full_env = {**os.environ, "FRAMESIFT_METRICS_PORT": "0", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "framesift", *args],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[call-overload]
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("framesift run did not finish (hang)")
    return proc.returncode, err


def jsonl(path: Path) -> list[dict]:
    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]  # every line parses


def test_run_example_config_on_a_generated_file(make_clip: Callable[..., ClipInfo], tmp_path: Path) -> None:
    clip = make_clip(segments=(30,))
    env = {"FRAMESIFT_INPUT": str(clip.path), "FRAMESIFT_OUT": str(tmp_path)}
    code, err = finish(framesift("run", "configs/file.yaml", "--no-progress", env=env))
    assert code == 0, err
    events = jsonl(tmp_path / "events.jsonl")
    assert [e["state"] for e in events] == ["connecting", "up", "eof"]
    assert events[-1]["frames"] == 30 and "Traceback" not in err


@pytest.mark.parametrize(("sig", "expected"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_signal_drains_and_exits_with_documented_code(
    make_clip: Callable[..., ClipInfo], tmp_path: Path, sig: int, expected: int
) -> None:
    clip = make_clip(segments=(250,), width=160, height=120)  # 10 s played in real time
    cfg = tmp_path / "rt.yaml"
    out = tmp_path / "events.jsonl"
    cfg.write_text(
        f"sources:\n  - {{type: file, path: '{clip.path}', realtime: true}}\n"
        f"sinks:\n  - {{type: jsonl, path: '{out}'}}\nmetrics: {{port: 0}}\n"
    )
    proc = framesift("run", str(cfg))
    deadline = time.monotonic() + 30
    while not (out.exists() and '"up"' in out.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "pipeline did not come up"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    code, err = finish(proc, 30)
    assert code == expected, err
    assert "Traceback" not in err
    events = jsonl(out)
    assert events[-1]["state"] == "stopped"
    assert 0 < events[-1]["frames"] < 250


def _bad_config(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    return p


BAD = {
    "missing_file": ("sources:\n  - {type: file, path: /nonexistent/x.mp4}\n", 3, "file not found"),
    "non_video": ("sources:\n  - {type: file, path: 'NONVIDEO'}\n", 3, "not a video"),
    "malformed_yaml": ("sources: [\n", 2, "malformed YAML"),
    "unknown_key": ("sources:\n  - {type: file, path: a.mp4, colour: red}\n", 2, "unknown key 'colour'"),
    "wrong_type": (
        "sources:\n  - {type: file, path: a.mp4}\nstage: {max_batch: lots}\n",
        2,
        "stage.max_batch",
    ),
    "refused": (
        "sources:\n  - type: rtsp\n    url: rtsp://127.0.0.1:1/x\n"
        "    reconnect: {initial_s: 0.05, give_up_after: 2}\n",
        3,
        "connection refused",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_one_line_error_exit_code_no_traceback(tmp_path: Path, case: str) -> None:
    body, expected, needle = BAD[case]
    nonvideo = tmp_path / "notes.mp4"
    nonvideo.write_bytes(b"this is not a video\n" * 500)
    cfg = _bad_config(tmp_path, body.replace("NONVIDEO", str(nonvideo)))
    code, err = finish(framesift("run", str(cfg), "--metrics-port", "0"), 60)
    assert code == expected, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("framesift: error:")]
    assert len(errors) == 1 and needle in errors[0], err


def test_bad_metrics_port_is_a_usage_error(tmp_path: Path) -> None:
    cfg = _bad_config(tmp_path, "sources:\n  - {type: file, path: a.mp4}\n")
    code, err = finish(framesift("run", str(cfg), "--metrics-port", "70000"))
    assert code == 2 and "--metrics-port" in err and "Traceback" not in err


def test_sigterm_after_an_api_added_source_failed_exits_0(
    make_clip: Callable[..., ClipInfo], tmp_path: Path
) -> None:
    """The exit-code rule (README): a source added over the control API that fails does not fail the
    run; SIGTERM after a clean drain is 0."""
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = make_clip(segments=(250,), width=160, height=120)
    cfg = tmp_path / "live.yaml"
    cfg.write_text(
        f"sources:\n  - {{type: file, id: a, path: '{clip.path}', realtime: true, loop: true}}\n"
        f"metrics: {{port: {port}}}\n"
    )
    proc = framesift("run", str(cfg), "--no-progress")
    try:
        api = f"http://127.0.0.1:{port}/sources"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "pipeline did not come up"
            try:
                if httpx.get(api, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        bad = {"type": "rtsp", "id": "gone", "url": "rtsp://127.0.0.1:1/x",
               "reconnect": {"initial_s": 0.05, "give_up_after": 1}}  # fmt: skip
        assert httpx.post(api, json=bad, timeout=10).status_code == 201
        while httpx.get(f"{api}/gone", timeout=5).json()["status"]["state"] != "failed":
            assert time.monotonic() < deadline + 30, "the added source did not fail"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    assert "Traceback" not in err and "framesift: error" not in err


def test_readme_next_step_after_the_demo_finds_its_cuts(tmp_path: Path) -> None:
    """README: `framesift demo -o out/`, then `framesift run configs/file.yaml` on the demo's clip."""
    env = {**os.environ, "FRAMESIFT_METRICS_PORT": "0"}
    demo = subprocess.run(
        [sys.executable, "-m", "framesift", "demo", "-o", "out/", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert "framesift run configs/file.yaml" in demo.stdout  # the demo says what to try next
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    demo_events = (tmp_path / "out" / "events.jsonl").read_text()
    run = subprocess.run(
        [sys.executable, "-m", "framesift", "run", "configs/file.yaml", "--no-progress"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    cuts = [
        e["frame_index"] for e in jsonl(tmp_path / "run-out" / "events.jsonl") if e["type"] == "scene_change"
    ]
    assert cuts == [75, 175, 225]  # the demo clip's true cuts, in their own folder
    assert (tmp_path / "out" / "events.jsonl").read_text() == demo_events  # the demo's output untouched

"""Config loading: every problem is one clear line naming the file, the field and what is allowed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from framesift.config import PipelineConfig, load_config, parse_config
from framesift.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.yaml"
    p.write_text(text)
    return p


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    msg = str(ei.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    assert ei.value.exit_code == 2
    return msg


def test_malformed_yaml(tmp_path: Path) -> None:
    assert "malformed YAML" in error_of(write(tmp_path, "sources: [\n"))


def test_unknown_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "sources:\n  - type: file\n    path: a.mp4\n    colour: red\n"))
    assert "sources.0.colour: unknown key 'colour'" in msg


def test_wrong_type(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "sources:\n  - {type: file, path: a.mp4}\nstage: {max_batch: many}\n"))
    assert "stage.max_batch" in msg and "integer" in msg and "'many'" in msg


def test_unknown_source_type(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "sources:\n  - {type: ftp, path: x}\n"))
    assert "unknown type 'ftp'" in msg and "'rtsp'" in msg


def test_unknown_sink_type(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "sources:\n  - {type: file, path: x}\nsinks:\n  - {type: fax}\n"))
    assert "sinks.0" in msg and "unknown type 'fax'" in msg


def test_unset_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FS_TEST_URL", raising=False)
    msg = error_of(write(tmp_path, "sources:\n  - type: rtsp\n    url: ${FS_TEST_URL}\n"))
    assert ":3:" in msg and "FS_TEST_URL is not set" in msg


def test_env_substitution_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FS_TEST_URL", "rtsp://u:p@cam/1")
    monkeypatch.delenv("FS_TEST_PORT", raising=False)
    cfg = load_config(
        write(
            tmp_path,
            "sources:\n  - {type: rtsp, url: '${FS_TEST_URL}'}\nmetrics: {port: ${FS_TEST_PORT:-0}}\n",
        )
    )
    assert cfg.sources[0].url == "rtsp://u:p@cam/1" and cfg.metrics.port == 0  # type: ignore[union-attr]


def test_several_problems_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, "sources:\n  - {type: file, path: a, bogus: 1}\nstage: {max_batch: 0}\n"))
    lines = str(ei.value).splitlines()
    assert len(lines) == 2 and all(line.startswith(str(tmp_path)) for line in lines)


def test_missing_file_and_empty_config(tmp_path: Path) -> None:
    assert "config file not found" in error_of(tmp_path / "absent.yaml")
    assert "expected a mapping" in error_of(write(tmp_path, ""))


def test_defaults_and_live_buffer_policy() -> None:
    cfg = parse_config({"sources": [{"type": "file", "path": "a.mp4"}]})
    assert isinstance(cfg, PipelineConfig)
    assert cfg.metrics.host == "127.0.0.1" and cfg.stage.max_batch >= 1 and cfg.sinks == []


@pytest.mark.parametrize("name", ["file.yaml", "rtsp.yaml"])
def test_example_configs_load(name: str) -> None:
    cfg = load_config(ROOT / "configs" / name)
    assert cfg.sources and cfg.sinks


@pytest.mark.parametrize("name", ["file.yaml", "rtsp.yaml"])
def test_example_configs_comment_every_field(name: str) -> None:
    for line in (ROOT / "configs" / name).read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and ":" in line:
            assert "#" in line, f"{name}: field without a comment: {line!r}"


def test_sink_field_errors_name_the_path_without_the_type_tag(tmp_path: Path) -> None:
    msg = error_of(
        write(tmp_path, "sources:\n  - {type: file, path: a}\nsinks:\n  - {type: jsonl, path: e, keep: 0}\n")
    )
    assert "sinks.0.keep:" in msg and "jsonl" not in msg.split(":")[1]


# -- hostile input: size, depth, long values, environment values ---------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "sources:\n  - {type: file, path: a}\nstage: " + "[" * 500 + "]" * 500 + "\n",
        "sources:\n  - {type: file, path: a}\nstage:\n"
        + "".join("  " * (i + 1) + "a:\n" for i in range(500)),
    ],
    ids=["flow", "block"],
)
def test_deep_nesting_is_one_line(tmp_path: Path, body: str) -> None:
    msg = error_of(write(tmp_path, body))
    assert "nested more than 50 levels deep" in msg and "brackets and indentation" in msg


def test_config_over_1_mib_is_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    def no_parse(*_a: object, **_k: object) -> None:
        raise AssertionError("parsed")

    monkeypatch.setattr(yaml.SafeLoader, "get_single_data", no_parse)
    body = "sources:\n  - {type: file, path: a}\n" + "# padding padding padding\n" * 50_000
    msg = error_of(write(tmp_path, body))
    assert "larger than 1024 KiB" in msg and "right file" in msg


def test_config_from_a_pipe_is_capped_too(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "p.yaml"
    os.mkfifo(fifo)

    def feed() -> None:
        try:  # the reader stops at the cap: a write, or the flush on close, then finds no reader
            with open(fifo, "wb") as fh:
                for _ in range(300):
                    fh.write(b"# " + b"x" * 8190 + b"\n")
        except BrokenPipeError:
            pass

    t = threading.Thread(target=feed)
    t.start()
    try:
        assert "larger than 1024 KiB" in error_of(fifo)
    finally:
        t.join(10)


def test_not_utf8_and_directory(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_bytes(b"sources: \xff\xfe\n")
    assert "not a text file in UTF-8" in error_of(p)
    d = tmp_path / "d.yaml"
    d.mkdir()
    assert "is a directory" in error_of(d)


def test_echoed_values_are_cut(tmp_path: Path) -> None:
    big = "9x" * 200_000  # 400 kB
    for body in (
        f"sources:\n  - {{type: file, path: a}}\nstage: {{max_batch: '{big}'}}\n",
        f"sources:\n  - {{type: file, path: a, {'k' * 1000}: 1}}\n",  # YAML keys are <= 1024 chars
        f"sources:\n  - {{type: '{big}', path: a}}\n",
        f"sources:\n  - {{type: file, path: a, id: '{'.' * 400_000}'}}\n",
        f"sources:\n  - {{type: file, path: a}}\nstage: *{'a' * 400_000}\n",
    ):
        msg = error_of(write(tmp_path, body))
        assert len(msg) < 1500 and "..." in msg, msg[:2000]
    msg = error_of(write(tmp_path, f"sources:\n  - {{type: file, path: a, id: '{'.' * 400_000}'}}\n"))
    assert msg.endswith("'... (400000 characters) is not a name (use letters, digits, _ . : -)")
    msg = error_of(
        write(tmp_path, f"sources:\n  - {{type: file, path: a}}\nstage: {{max_batch: {'1' * 400_000}}}\n")
    )
    assert msg.endswith("p.yaml:3:20: malformed YAML: a number of 400000 digits is too long")


def test_a_thousand_problems_are_cut_to_twenty_lines(tmp_path: Path) -> None:
    keys = ", ".join(f"k{i}: 1" for i in range(1000))
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, f"sources:\n  - {{type: file, path: a, {keys}}}\n"))
    lines = str(ei.value).splitlines()
    assert len(lines) == 21 and lines[-1].endswith("... and 980 more problems (fix these first)")


VALUES = ['pa"ss', "back\\slash", "a: b # c", "line1\nline2", "'quoted'", "[1, 2]", "{x: y}", "&a *b !!int"]


@pytest.mark.parametrize("value", VALUES)
def test_env_values_are_data_not_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FS_TEST_PW", value)
    cfg = load_config(
        write(
            tmp_path,
            "sources:\n"
            "  - {type: rtsp, url: 'rtsp://u:${FS_TEST_PW}@cam/1', id: a}\n"
            '  - {type: rtsp, url: "rtsp://u:${FS_TEST_PW}@cam/2", id: b}\n'
            "  - type: rtsp\n    url: rtsp://u:${FS_TEST_PW}@cam/3  # plain\n    id: c\n"
            "  - {type: file, path: ${FS_TEST_PW}, id: d}\n"
            "  - type: file\n    path: ${FS_TEST_PW}\n    id: e\n",
        )
    )
    urls = [getattr(s, "url", None) or getattr(s, "path", None) for s in cfg.sources]
    assert urls == [f"rtsp://u:{value}@cam/{i}" for i in (1, 2, 3)] + [value, value]


def test_env_defaults_types_and_comments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FS_TEST_UNSET", raising=False)
    monkeypatch.setenv("FS_TEST_BATCH", "8")
    cfg = load_config(
        write(
            tmp_path,
            "# url: ${FS_TEST_UNSET} (a reference in a comment is not needed)\n"
            "sources:\n  - {type: file, path: '${FS_TEST_UNSET:-a \"b\": c}'}\n"
            "stage: {max_batch: ${FS_TEST_BATCH}, stale_after_ms: ${FS_TEST_UNSET:-}}\n"
            "sinks:\n  - {type: mqtt, host: h, qos: ${FS_TEST_UNSET:-2}}\n",
        )
    )
    assert cfg.sources[0].path == 'a "b": c'  # type: ignore[union-attr]
    assert cfg.stage.max_batch == 8 and cfg.stage.stale_after_ms is None
    assert cfg.sinks[0].qos == 2  # type: ignore[union-attr]


def test_unset_env_var_in_a_quoted_value_names_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FS_TEST_URL", raising=False)
    msg = error_of(write(tmp_path, "sources:\n  - type: rtsp\n\n    url: 'rtsp://${FS_TEST_URL}/x'\n"))
    assert ":4:" in msg and "FS_TEST_URL is not set" in msg and "${FS_TEST_URL:-default}" in msg


# -- unknown keys: what is allowed, and the nearest key --------------------------------------------


@pytest.mark.parametrize(
    ("body", "where", "near", "allowed"),
    [
        ("sources:\n  - {type: file, path: a, fps: 5}\n", "sources.0.fps", "target_fps", "path"),
        ("sources:\n  - {type: images, path: a, max_pixel: 5}\n", "sources.0.max_pixel", "max_pixels", "fps"),
        (
            "sources:\n  - {type: file, path: a, buffer: {capacty: 2}}\n",
            "sources.0.buffer.capacty",
            "capacity",
            "on_full",
        ),
        (
            "sources:\n  - {type: rtsp, url: 'rtsp://x', reconnect: {inital_s: 1}}\n",
            "sources.0.reconnect.inital_s",
            "initial_s",
            "jitter",
        ),
        ("sources:\n  - {type: file, path: a}\nstag: {}\n", "stag", "stage", "sources"),
        (
            "sources:\n  - {type: file, path: a}\nsinks:\n  - {type: jsonl, path: e, kep: 1}\n",
            "sinks.0.kep",
            "keep",
            "path",
        ),
        (
            "sources:\n  - {type: file, path: a}\nanalyzers:\n  - {type: scene_change, treshold_k: 1}\n",
            "analyzers.0.treshold_k",
            "threshold_k",
            "type",
        ),
    ],
)
def test_unknown_key_lists_allowed_and_nearest(
    tmp_path: Path, body: str, where: str, near: str, allowed: str
) -> None:
    msg = error_of(write(tmp_path, body))
    key = where.rsplit(".", 1)[-1]
    assert f"{where}: unknown key {key!r} (did you mean {near!r}? allowed: " in msg
    assert allowed in msg.split("allowed: ", 1)[1].rstrip(")").split(", ")


def test_unknown_key_without_a_near_one_still_lists_allowed(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "sources:\n  - {type: file, path: a, colour: red}\n"))
    assert "sources.0.colour: unknown key 'colour' (allowed: buffer, decoder," in msg and "mean" not in msg


@pytest.mark.parametrize("case", ["deep", "huge_file", "huge_value"])
def test_hostile_configs_are_one_line_exit_2_on_the_command_line(tmp_path: Path, case: str) -> None:
    import subprocess
    import sys
    import time

    body = {
        "deep": "sources: " + "[" * 500 + "]" * 500 + "\n",
        "huge_file": "sources:\n  - {type: file, path: a}\n" + "# " + "x" * (50 << 20) + "\n",
        "huge_value": "sources:\n  - {type: file, path: a}\nstage: {max_batch: '" + "9" * 900_000 + "x'}\n",
    }[case]
    path = write(tmp_path, body)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "framesift", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"framesift: error: {path}") and proc.stderr.count("\n") == 1
    assert len(proc.stderr) < 1000 and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 30


def test_full_pictures_needs_the_cpu_decoder() -> None:
    src = {"type": "file", "path": "a.mp4", "width": 256, "full_pictures": True}
    assert parse_config({"sources": [src]}).sources[0].full_pictures
    with pytest.raises(ConfigError, match="full_pictures needs decoder: pyav"):
        parse_config({"sources": [{**src, "decoder": "opencv"}]})

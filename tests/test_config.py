"""Config loading: every problem is one clear line naming the file, the field and what is allowed."""

from __future__ import annotations

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

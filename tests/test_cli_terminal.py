"""What a user sees in the terminal: help without markup, log lines that do not break progress bars,
other libraries' warnings in framesift's format, a bar cut short by Ctrl-C cleared, one flag name."""

from __future__ import annotations

import argparse
import io
import logging
import time
from collections.abc import Callable, Iterator

import pytest

from framesift.cli import COMMANDS, build_parser
from framesift.log import setup_logging
from framesift.pipeline.status import PipelineStatus, StageInfo
from framesift.progress import Progress
from framesift.samples import ClipInfo


@pytest.fixture
def restore_logging() -> Iterator[None]:
    loggers = [logging.getLogger("framesift"), logging.getLogger()]
    saved = [(list(lg.handlers), lg.propagate, lg.level) for lg in loggers]
    yield
    for lg, (handlers, propagate, level) in zip(loggers, saved, strict=True):
        lg.handlers[:] = handlers
        lg.propagate, lg.level = propagate, level
    logging.captureWarnings(False)


def test_help_has_no_restructuredtext_markup() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(COMMANDS) <= set(sub.choices)
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "``" not in text and ":class:" not in text, name


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["scenes", "a.mp4", "--min-scene-len", "abc"], "framesift scenes: error: argument --min-scene-len: "
         "invalid int value: 'abc' (see framesift scenes --help)"),
        (["collect", "a.mp4", "--nope"], "framesift collect: error: unrecognized arguments: --nope "
         "(see framesift collect --help)"),
        (["scenes"], "framesift scenes: error: the following arguments are required: VIDEO "
         "(see framesift scenes --help)"),
        (["--nope"], "framesift: error: unrecognized arguments: --nope (see framesift --help)"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_line_naming_the_commands_help(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from framesift.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err == line + "\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _status(n: int) -> PipelineStatus:
    from framesift.pipeline.status import EngineInfo, SourceInfo

    src = SourceInfo("file", False, "up", "", 0.0, n, 0, n, n - 1, 0.0, 0, 0, 32, "block", {}, False)
    engine = EngineInfo(None, "ok", 0, 0)
    return PipelineStatus("running", 1.0, {"a": src}, StageInfo(0, n, [], None, engine, []), {}, False)


def test_log_lines_do_not_break_a_progress_bar(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _Tty()
    monkeypatch.setattr("sys.stderr", out)
    setup_logging("info")
    count = [0]

    def status() -> PipelineStatus:
        count[0] += 10
        return _status(count[0])

    prog = Progress(status, files_only=True, total=1000, stream=out)
    prog.start()
    time.sleep(0.8)  # the bar is drawn
    logging.getLogger("framesift.test").warning("a line in the middle")
    time.sleep(0.6)
    prog.stop()
    lines = out.getvalue().replace("\r", "\n").splitlines()
    logged = [ln for ln in lines if "a line in the middle" in ln]
    assert logged and all(ln.strip().endswith("a line in the middle") for ln in logged)  # a line of its own
    assert all("|" not in ln for ln in logged)  # not glued to the bar


def test_a_bar_cut_short_is_cleared(restore_logging: None) -> None:
    out = _Tty()
    prog = Progress(lambda: _status(40), files_only=True, total=1000, stream=out)
    prog.start()
    time.sleep(0.8)
    prog.stop()  # interrupted at 40/1000
    text = out.getvalue()
    assert "40/1000" in text  # it was drawn...
    assert text.endswith("\r") and text.split("\r")[-2].strip() == ""  # ...then blanked out
    done = _Tty()
    prog = Progress(lambda: _status(1000), files_only=True, total=1000, stream=done)
    prog.start()
    time.sleep(0.8)
    prog.stop()
    assert done.getvalue().rstrip().endswith("]") and "1000/1000" in done.getvalue().splitlines()[-1]  # kept


def test_other_libraries_warnings_use_framesift_format(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("info")
    logging.getLogger("somelib.module").warning("a third-party warning")
    logging.warning("a root warning")
    err = capsys.readouterr().err
    assert "WARNING somelib.module: a third-party warning" in err
    assert "WARNING root: a root warning" in err and "WARNING:root:" not in err


def test_clip_pretrained_is_one_flag_in_collect_and_detect() -> None:
    parser = build_parser()
    for cmd in (["collect", "x.mp4"], ["detect", "x.mp4"]):
        for flag in ("--clip-pretrained", "--pretrained"):
            args = parser.parse_args([*cmd, flag, "openai"])
            value = getattr(args, "pretrained", None) or getattr(args, "clip_pretrained", None)
            assert value == "openai", (cmd, flag)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert "0.35" in sub.choices["collect"].format_help()


def test_label_writes_beside_its_input_never_inside(make_clip: Callable[..., ClipInfo], tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from framesift.cli.label import default_output

    folder = tmp_path / "images"
    folder.mkdir()
    out = default_output(folder, "coco")
    assert out == tmp_path / "images-labels-coco"
    collected = tmp_path / "run"
    (collected / "store").mkdir(parents=True)
    assert default_output(collected, "yolo") == tmp_path / "run-labels-yolo"
    assert default_output(collected / "store", "yolo") == tmp_path / "run-labels-yolo"
    assert not str(default_output(folder, "coco")).startswith(str(folder) + "/")
    assert isinstance(out, Path)

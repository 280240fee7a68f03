"""``framesift detect`` on hostile inputs and outputs: a model option that is not a model, output
paths taken by folders, a video too small to encode, timestamps that jump back, SAM's ``none``
checkpoint (random-weight models, real files)."""

from __future__ import annotations

import itertools
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from framesift.cli import main
from framesift.engines.cache import EngineCache
from framesift.events import FrameDetections
from framesift.frame import Frame
from framesift.sinks.video import VideoSink
from tests.detect.conftest import IMGSZ

pytest.importorskip("ultralytics")
pytest.importorskip("open_clip")

TB = Fraction(1, 90000)


@pytest.fixture(scope="module")
def onnx_model(world_model, engine_cache: EngineCache) -> str:  # type: ignore[no-untyped-def]
    from framesift.engines.models.yolo_world import YoloWorld

    return str(
        YoloWorld(world_model, imgsz=IMGSZ, cache=engine_cache, device="cpu", runtime="onnxruntime").onnx_path
    )


def _args(source: Path, model: str, out: Path, *extra: str) -> list[str]:
    return [
        "detect", str(source), "--prompt", "person", "--model", model, "--imgsz", str(IMGSZ),
        "--clip-pretrained", "none", "--device", "cpu", "--batch", "4", "-o", str(out), "--no-progress",
        *extra,
    ]  # fmt: skip


def _write(
    path: Path, frames: int, size: tuple[int, int], *, codec: str = "libx264", fmt: str | None = None
) -> Path:
    """A real clip of ``frames`` noise frames of ``size`` (w, h) at 25 fps."""
    rng = np.random.default_rng(0)
    w, h = size
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height = w, h
        s.pix_fmt = "yuv420p" if codec == "libx264" else "bgr0"
        for _ in range(frames):
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _frame_count(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Fraction(f.pts) * s.time_base for f in c.decode(s)]


def _errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("framesift: error:")]


@pytest.mark.parametrize("name", ["text.txt", "clip.mp4", "fake.pt", "fake.onnx"])
def test_model_that_is_not_a_model_is_a_usage_error(
    name: str, make_clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    clip = make_clip("c.mp4", segments=(2,), width=64, height=48)
    model = tmp_path / name
    model.write_bytes(clip.path.read_bytes() if name.endswith(".mp4") else b"not a model\n" * 10)
    assert main(_args(clip.path, str(model), tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "acceptable suffix" not in err
    assert len(_errors(err)) == 1
    assert _errors(err)[0].startswith(f"framesift: error: --model {model}: not a YOLO-World model (")
    assert ".onnx" in _errors(err)[0] and ".pt2" in _errors(err)[0]
    assert not (tmp_path / "o").exists()


def test_output_path_taken_by_a_folder_is_refused_before_models_load(
    make_clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    clip = make_clip("c.mp4", segments=(2,), width=64, height=48)
    for name in ("annotated.mp4", "detections.jsonl"):
        out = tmp_path / name.split(".")[0]
        (out / name).mkdir(parents=True)
        assert main(_args(clip.path, "s", out)) == 2
        err = capsys.readouterr().err
        assert len(_errors(err)) == 1 and f"{out / name} is a folder" in err
        assert sorted(p.name for p in out.iterdir()) == [name]  # nothing written, no partial file


def test_tiny_video_warns_once_writes_detections_and_exits_1(
    onnx_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = _write(tmp_path / "tiny.mkv", 10, (1, 1), codec="ffv1")
    out = tmp_path / "o"
    assert main(_args(clip, onnx_model, out, "--per-frame")) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "IndexError" not in err
    assert len([ln for ln in err.splitlines() if "too small to encode" in ln]) == 1
    assert _errors(err) and "annotated.mp4 was not written" in _errors(err)[-1]
    assert len((out / "frames.jsonl").read_text().splitlines()) == 10  # the other sinks wrote
    assert (out / "detections.jsonl").exists()
    assert not (out / "annotated.mp4").exists() and not list(out.glob(".*partial*"))


def test_backwards_timestamps_keep_every_frame(
    onnx_model: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two TS segments concatenated byte for byte: the second restarts at the first one's pts. Every
    frame is written and tracked (the tracker skipped each frame whose time went back)."""
    a = _write(tmp_path / "a.ts", 12, (96, 64), fmt="mpegts")
    b = _write(tmp_path / "b.ts", 12, (96, 64), fmt="mpegts")
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    src_frames = _frame_count(joined)
    assert src_frames == 24
    out = tmp_path / "o"
    assert main(_args(joined, onnx_model, out)) == 0
    err = capsys.readouterr().err
    times = _times(out / "annotated.mp4")
    assert len(times) == src_frames  # every frame, as detect --help promises
    assert all(t1 > t0 for t0, t1 in itertools.pairwise(times))
    assert len([ln for ln in err.splitlines() if "timestamps go back" in ln]) == 1
    assert "non-increasing" not in err
    assert "ByteTrack" not in err  # the tracker was given times that go back, and skipped those frames


def _event(pts: int, image: np.ndarray) -> FrameDetections:
    frame = Frame("cam", 0, pts, TB, 0.0, image)
    return FrameDetections(source="cam", frame_index=0, pts=pts, time_base=TB, time=0.0, frame=frame)


def test_video_sink_rebases_repeated_and_backwards_pts(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("framesift.sinks.video")
    logger.addHandler(handler)
    try:
        sink = VideoSink(tmp_path / "v.mp4", fps=25)
        img = np.zeros((32, 48, 3), np.uint8)
        pts = [i * 3600 for i in range(5)] + [i * 3600 for i in range(5)] + [3600 * 3] * 2
        for p in pts:
            sink.write(_event(126000 + p, img))
        assert sink.close_source("cam") == tmp_path / "v.mp4"
    finally:
        logger.removeHandler(handler)
    times = _times(tmp_path / "v.mp4")
    assert len(times) == len(pts)
    assert times == [Fraction(126000 + i * 3600) * TB for i in range(len(pts))]
    assert len([r for r in records if r.levelno == logging.WARNING]) == 1


def test_video_sink_finish_failure_leaves_no_partial_file(tmp_path: Path) -> None:
    from framesift.errors import SinkError

    (tmp_path / "v.mp4").mkdir()
    sink = VideoSink(tmp_path / "v.mp4", fps=25)
    sink.write(_event(0, np.zeros((32, 48, 3), np.uint8)))
    with pytest.raises(SinkError, match="cannot finish"):
        sink.close()
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]


def test_sam_checkpoint_none_is_random_weights(
    onnx_model: str,
    make_clip,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine_cache: EngineCache,
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("mobile_sam")
    monkeypatch.setenv("FRAMESIFT_CACHE", str(engine_cache.root))
    clip = make_clip("seg.mp4", segments=(2,), width=96, height=64)
    out = tmp_path / "o"
    args = _args(clip.path, onnx_model, out, "--segment", "--sam-checkpoint", "none", "--max-det", "2")
    assert main(args) == 0
    assert _frame_count(out / "annotated.mp4") == 2

"""``framesift detect`` / ``framesift label`` end to end on generated clips (random-weight models)."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import supervision as sv

from framesift.cli import main
from framesift.engines.cache import EngineCache
from tests.detect.conftest import IMGSZ

pytest.importorskip("ultralytics")
pytest.importorskip("open_clip")


@pytest.fixture(scope="module")
def onnx_model(world_model, engine_cache: EngineCache) -> str:  # type: ignore[no-untyped-def]
    from framesift.engines.models.yolo_world import YoloWorld

    return str(
        YoloWorld(world_model, imgsz=IMGSZ, cache=engine_cache, device="cpu", runtime="onnxruntime").onnx_path
    )


def _times(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [Fraction(f.pts) * s.time_base for f in c.decode(s)]


def _common(onnx_model: str) -> list[str]:
    return [
        "--prompt", "person", "--prompt", "forklift", "--model", onnx_model, "--imgsz", str(IMGSZ),
        "--conf", "0.05", "--clip-pretrained", "none", "--device", "cpu", "--batch", "4",
    ]  # fmt: skip


def test_detect_writes_tracks_frames_and_annotated_video(make_clip, onnx_model: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = make_clip("clip.mp4", segments=(14,), width=160, height=120, fps=Fraction(25))
    out = tmp_path / "out"
    rc = main(["detect", str(clip.path), *_common(onnx_model), "-o", str(out), "--per-frame"])
    assert rc == 0
    video = out / "annotated.mp4"
    assert video.exists() and not list(out.glob(".*partial*"))
    src_times = _times(clip.path)
    assert len(src_times) == clip.frames == 14
    assert _times(video) == src_times  # same frame count and timestamps as the source
    with av.open(str(video)) as c:
        assert c.streams.video[0].average_rate == 25
    frames = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert [f["frame_index"] for f in frames] == list(range(14))
    names = {d["class_name"] for f in frames for d in f["detections"]}
    assert names and names <= {"person", "forklift"}
    tracks = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    track_events = [t for t in tracks if t["type"] == "track"]
    started = {t["track_id"] for t in track_events if t["phase"] == "started"}
    ended = {t["track_id"] for t in track_events if t["phase"] == "ended"}
    assert started and started == ended


def test_a_broken_input_among_several_does_not_stop_the_others(  # type: ignore[no-untyped-def]
    make_clip, onnx_model: str, tmp_path: Path, capsys, monkeypatch
) -> None:
    import framesift.engines.detectors as detectors

    builds: list[object] = []
    real = detectors.build_detector
    monkeypatch.setattr(
        detectors, "build_detector", lambda spec, **kw: builds.append(spec) or real(spec, **kw)
    )
    a = make_clip("a.mp4", segments=(6,), width=160, height=120)
    b = make_clip("b.mp4", segments=(6,), width=160, height=120, seed=4)
    junk = [tmp_path / "junk1.mp4", tmp_path / "junk2.mp4"]
    for j in junk:
        j.write_text("not a video")
    out = tmp_path / "out"
    videos = [str(a.path), str(junk[0]), str(b.path), str(junk[1])]
    rc = main(["detect", *videos, *_common(onnx_model), "-o", str(out), "--no-video", "--no-progress"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "junk1.mp4" in err.splitlines()[-1]  # the exit line names the first broken input
    assert "junk2.mp4" in err  # the other one is logged
    for stem in ("a", "b"):  # both good files were processed and reported
        assert (out / stem / "detections.jsonl").exists()
        assert f"{stem}.mp4: 6 frames" in err
    assert len(builds) == 1  # one detector served every file (it used to be built per file)


def test_detect_with_segmentation_draws_masks(
    make_clip, onnx_model: str, tmp_path: Path, monkeypatch, engine_cache
) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("mobile_sam")
    monkeypatch.setenv("FRAMESIFT_CACHE", str(engine_cache.root))  # reuses test_sam's export
    clip = make_clip("seg.mp4", segments=(4,), width=160, height=120)
    out = tmp_path / "seg"
    args = [
        "detect",
        str(clip.path),
        *_common(onnx_model),
        "-o",
        str(out),
        "--per-frame",
        "--segment",
        "--max-det",
        "3",
    ]
    assert main(args) == 0
    frames = [json.loads(line) for line in (out / "frames.jsonl").read_text().splitlines()]
    assert len(frames) == 4
    areas = [d["mask_area"] for f in frames for d in f["detections"]]
    assert all(len(f["detections"]) <= 3 for f in frames)
    assert areas and all(0 <= a <= 160 * 120 for a in areas)
    assert len(_times(out / "annotated.mp4")) == 4


def test_detect_errors_are_clear(onnx_model: str, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "never"
    args = [
        "detect",
        str(tmp_path / "missing.mp4"),
        *_common(onnx_model)[4:],
        "--prompt",
        "x",
        "-o",
        str(out),
    ]
    assert main(args) == 3
    assert "not found" in capsys.readouterr().err and not out.exists()
    rc = main(["detect", onnx_model, "--model", onnx_model, "--clip-pretrained", "none", "-o", str(out)])
    assert rc == 2 and "--prompt" in capsys.readouterr().err and not out.exists()


def test_label_folder_and_store_to_coco_and_yolo(onnx_model: str, tmp_path: Path) -> None:
    import cv2

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"f{i}.png"), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    out = tmp_path / "coco"
    assert (
        main(["label", "--store", str(folder), *_common(onnx_model), "--format", "coco", "-o", str(out)]) == 0
    )
    ds = sv.DetectionDataset.from_coco(str(out / "images"), str(out / "annotations.json"))
    assert ds.classes == ["person", "forklift"] and len(ds) == 3
    assert sum(len(d) for _, _, d in ds) > 0

    from framesift.store.index import FrameStore

    store = tmp_path / "store"
    with FrameStore(store, fsync=False) as fs:
        for i in range(2):
            fs.add(
                id=f"k{i}",
                source="cam",
                image=rng.integers(0, 255, (96, 128, 3), dtype=np.uint8),
                wallclock=1.0 + i,
            )
    yolo = tmp_path / "yolo"
    assert (
        main(["label", "--store", str(store), *_common(onnx_model), "--format", "yolo", "-o", str(yolo)]) == 0
    )
    ds2 = sv.DetectionDataset.from_yolo(str(yolo / "images"), str(yolo / "labels"), str(yolo / "data.yaml"))
    assert sorted(Path(p).stem for p in ds2.image_paths) == ["k0", "k1"]


def test_label_bad_store_fails_before_models_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for store, match in (
        (tmp_path / "missing", "not a folder"),
        (empty, "no frame store index and no images"),
    ):
        # a model path that does not exist: reaching the model loader would fail differently
        assert (
            main(["label", "--store", str(store), "--prompt", "x", "--model", str(tmp_path / "no.onnx")]) == 2
        )
        err = capsys.readouterr().err
        assert match in err and "no.onnx" not in err


def test_offline_detect_fails_fast_with_the_recipe(
    make_clip,
    onnx_model: str,
    tmp_path: Path,
    capsys,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """Without a reachable model hub, asking for hub weights fails in seconds and says what to pass."""
    import time

    from framesift.engines.models.clip_weights import cached_pretrained_path

    if cached_pretrained_path("ViT-B-32", "openai") is not None:
        pytest.skip("this machine has the openai ViT-B-32 weights cached")
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # nothing listens there
    clip = make_clip("off.mp4", segments=(4,), width=160, height=120)
    args = ["detect", str(clip.path), "--prompt", "x", "--model", onnx_model, "--imgsz", str(IMGSZ),
            "--device", "cpu", "-o", str(tmp_path / "o"), "--no-progress"]  # fmt: skip
    t0 = time.monotonic()
    assert main(args) == 2
    assert time.monotonic() - t0 < 15
    err = capsys.readouterr().err.strip().splitlines()
    assert len([ln for ln in err if ln.startswith("framesift: error:")]) == 1
    assert "--clip-pretrained" in err[-1] and "none" in err[-1] and "127.0.0.1" in err[-1]

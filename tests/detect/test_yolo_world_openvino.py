"""YOLO-World on OpenVINO (fp32): raw outputs equal the reference model's, detections equal ONNX Runtime's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framesift.engines.cache import EngineCache
from framesift.engines.runtimes import available_runtimes
from tests.detect.conftest import IMGSZ, hashed_text_encoder

pytest.importorskip("ultralytics")
pytestmark = pytest.mark.skipif(
    available_runtimes()["openvino"].startswith("unavailable"), reason="openvino is not installed"
)


def _detector(model, cache: EngineCache, runtime: str):  # type: ignore[no-untyped-def]
    from framesift.engines.models.yolo_world import YoloWorld

    return YoloWorld(
        model, imgsz=IMGSZ, cache=cache, device="cpu", runtime=runtime, text_encoder=hashed_text_encoder
    )


def test_openvino_equals_reference_raw_outputs(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    from tests.detect.test_yolo_world import _reference_raw

    det = _detector(world_model, engine_cache, "openvino")
    assert (det.plan.runtime, det.plan.precision) == ("openvino", "fp32")
    assert det.model_path.suffix == ".xml"
    torch.manual_seed(3)
    x = torch.rand(2, 3, IMGSZ - 32, IMGSZ + 64)
    text = torch.nn.functional.normalize(torch.randn(4, 512), dim=-1)
    ours = det.raw(x, text.numpy())
    ref = _reference_raw(world_model, x, text)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours[:, :4], ref[:, :4], atol=1e-2, rtol=1e-4)  # pixel boxes
    np.testing.assert_allclose(ours[:, 4:], ref[:, 4:], atol=1e-4)  # scores
    det.close()


def test_openvino_runs_the_detector_like_onnxruntime(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    from framesift.engines.models.detect_post import letterbox

    ov = _detector(world_model, engine_cache, "openvino")
    ort = _detector(world_model, engine_cache, "onnxruntime")
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(3)]
    batch, _ = letterbox(frames, IMGSZ, "cpu")
    text = ov.text_embeddings(["forklift", "person"])
    a, b = ov.raw(batch, text), ort.raw(batch, text)
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-2, rtol=1e-4)
    np.testing.assert_allclose(a[:, 4:], b[:, 4:], atol=1e-4)
    ov.conf = 0.05
    dets = ov.detect(frames, prompts=["forklift", "person"])
    assert len(dets) == 3 and sum(len(d) for d in dets) > 0
    assert {str(n) for d in dets for n in d.data["class_name"]} <= {"forklift", "person"}
    ov.close()
    ort.close()


def test_int8_detector_within_its_measured_bound(world_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """INT8 (convolutions) against fp32 on the same frames: raw scores within 0.1, median box
    coordinate within 4 px (measured here: scores 1e-4, boxes median 0.3 px, p99 2 px)."""
    from framesift.engines.models.detect_post import letterbox
    from framesift.engines.models.yolo_world import YoloWorld

    cache = EngineCache(tmp_path)
    kw = {"imgsz": IMGSZ, "cache": cache, "device": "cpu", "runtime": "openvino"}
    fp32 = YoloWorld(world_model, text_encoder=hashed_text_encoder, **kw)
    int8 = YoloWorld(world_model, text_encoder=hashed_text_encoder, precision="int8", **kw)
    assert int8.plan.precision == "int8" and "generated" in str(int8.calibration)
    rng = np.random.default_rng(9)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(2)]
    batch, _ = letterbox(frames, IMGSZ, "cpu")
    text = fp32.text_embeddings(["forklift", "person"])
    a, b = int8.raw(batch, text), fp32.raw(batch, text)
    assert float(np.abs(a[:, 4:] - b[:, 4:]).max()) <= 0.1
    assert float(np.median(np.abs(a[:, :4] - b[:, :4]))) <= 4.0
    assert not np.array_equal(a, b)  # a different (quantised) graph
    fp32.close()
    int8.close()


def test_sam_on_openvino_equals_onnxruntime(sam_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    """MobileSAM (vit_t, random weights): encoder embeddings and decoder masks on OpenVINO fp32
    equal ONNX Runtime's (which the SAM tests hold to the reference predictor)."""
    from framesift.engines.models.sam import SamSegmenter

    ov = SamSegmenter(sam_model, cache=engine_cache, device="cpu", runtime="openvino")
    ort = SamSegmenter(sam_model, cache=engine_cache, device="cpu", runtime="onnxruntime")
    assert ov.plan.runtime == "openvino"
    img = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ea, eb = ov.embed(img), ort.embed(img)
    cos = (ea.ravel() @ eb.ravel()) / (np.linalg.norm(ea) * np.linalg.norm(eb))
    assert cos >= 0.999
    boxes = np.array([[40, 30, 120, 90], [5, 5, 50, 45]], np.float32)
    ma, mb = ov.segment(img, boxes), ort.segment(img, boxes)
    assert ma.shape == mb.shape and (ma == mb).mean() >= 0.99

"""SAM: encoder once per frame + decoder batched over boxes equals the reference predictor box by box."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from framesift.engines.cache import EngineCache
from framesift.errors import ConfigError

pytest.importorskip("mobile_sam")


def _frame() -> np.ndarray:
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img[30:90, 40:120] = (200, 30, 30)
    return img


BOXES = np.array([[40, 30, 120, 90], [5, 5, 50, 45], [75, 50, 155, 115], [0, 0, 160, 120]], np.float32)


@pytest.fixture(scope="module")
def segmenter(sam_model, engine_cache: EngineCache):  # type: ignore[no-untyped-def]
    from framesift.engines.models.sam import SamSegmenter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SamSegmenter(sam_model, cache=engine_cache, device="cpu")


def test_batched_decoder_equals_reference_predictor_box_by_box(sam_model, segmenter) -> None:  # type: ignore[no-untyped-def]
    from mobile_sam import SamPredictor

    img = _frame()
    pred = SamPredictor(sam_model)
    pred.set_image(img)
    # 1. identical encoder input → our ONNX encoder equals the reference's image features
    ref_input = sam_model.preprocess(
        torch.as_tensor(pred.transform.apply_image(img)).permute(2, 0, 1)[None].float()
    ).numpy()
    ours_emb = segmenter.encoder.run({"image": ref_input})[0]
    np.testing.assert_allclose(ours_emb, pred.features.numpy(), atol=2e-3)
    # 2. on those features, one batched decoder call equals the predictor box by box
    masks, ious = segmenter.decode(pred.features.numpy(), BOXES, img.shape[:2])
    assert masks.shape == (len(BOXES), 120, 160) and masks.dtype == bool
    for i, box in enumerate(BOXES):
        ref_masks, ref_iou, _ref_low = pred.predict(box=box, multimask_output=False)
        assert ref_masks[0].sum() > 0
        diff = int((ref_masks[0] != masks[i]).sum())
        assert diff <= max(3, ref_masks[0].size // 2000), f"box {i}: {diff} pixels differ"
        np.testing.assert_allclose(ious[i], ref_iou[0], atol=1e-4)
    # 3. end to end with our tensor preprocessing (antialiased bilinear, vs PIL): near-identical masks
    e2e = segmenter.segment(img, BOXES)
    for i, box in enumerate(BOXES):
        ref_masks, _, _ = pred.predict(box=box, multimask_output=False)
        inter = np.logical_and(ref_masks[0], e2e[i]).sum()
        union = np.logical_or(ref_masks[0], e2e[i]).sum()
        assert inter / union > 0.99


def test_detections_get_masks_at_frame_resolution(segmenter) -> None:  # type: ignore[no-untyped-def]
    import supervision as sv

    img = _frame()
    det = sv.Detections(xyxy=BOXES[:2].copy(), confidence=np.array([0.9, 0.8]), class_id=np.array([0, 1]))
    out = segmenter.segment_detections(img, det)
    assert out.mask is not None and out.mask.shape == (2, 120, 160)
    empty = segmenter.segment_detections(img, sv.Detections.empty())
    assert empty.mask.shape == (0, 120, 160)
    # chunking over max_boxes gives the same masks as one call
    segmenter.max_boxes = 1
    try:
        chunked = segmenter.segment(img, BOXES)
    finally:
        segmenter.max_boxes = 64
    np.testing.assert_array_equal(chunked, segmenter.segment(img, BOXES))


def test_unknown_sam_model_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from framesift.engines.models.sam import SamSegmenter

    with pytest.raises(ConfigError, match="vit_t"):
        SamSegmenter("vit_q", cache=EngineCache(tmp_path))
    with pytest.raises(ConfigError, match="not found"):
        SamSegmenter("vit_t", checkpoint=tmp_path / "missing.pt", cache=EngineCache(tmp_path))


def test_sam_spec_builds_the_segmenter_through_the_plan(
    segmenter, engine_cache: EngineCache, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from framesift.engines.models.sam import SamSegmenter
    from framesift.engines.segmenters import build_segmenter
    from framesift.engines.segmenters.sam import SamConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = build_segmenter(SamConfig(device="cpu", max_boxes=2), cache=engine_cache)
    assert isinstance(seg, SamSegmenter) and seg.max_boxes == 2
    assert (seg.plan.runtime, seg.plan.device, seg.plan.precision) == ("onnxruntime", "cpu", "fp32")
    assert seg.encoder.path == segmenter.encoder.path  # the same random weights: the cached export
    img = _frame()
    np.testing.assert_array_equal(seg.segment(img, BOXES), segmenter.segment(img, BOXES))
    seg.close()
    if not torch.cuda.is_available():  # an explicit device SAM cannot run on is refused by the plan
        with pytest.raises(ConfigError, match=r"SAM: .*not available here"):
            SamSegmenter(segmenter.encoder.path.parent, device="cuda", cache=EngineCache(tmp_path))

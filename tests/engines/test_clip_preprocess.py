"""The tensor preprocessing equals open_clip's own PIL transform on real decoded frames."""

from __future__ import annotations

import numpy as np
import pytest

open_clip = pytest.importorskip("open_clip")
torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from framesift.engines.models.clip_preprocess import ClipPreprocessor, PreprocessCfg, resized_size  # noqa: E402
from tests.engines.conftest import SIZES  # noqa: E402

# One 8-bit step of the un-normalised image is 1/255/std ≈ 0.015 in normalised units. Pillow rounds
# between its horizontal and vertical passes, so a few pixels at hard edges may differ by several steps.
STEP = 1 / 255 / min(0.26130258, 0.26862954, 0.27577711)
MAX_ABS = 10 * STEP
Q999_ABS = 1.01 * STEP  # 99.9 % of values within one 8-bit step
MEAN_ABS = 0.002


def _assert_close(got: torch.Tensor, ref: torch.Tensor) -> None:
    diff = (got - ref).abs().flatten()
    q = float(torch.quantile(diff[:: max(1, diff.numel() // 1_000_000)], 0.999))
    assert float(diff.max()) <= MAX_ABS, f"max diff {float(diff.max()):.4f}"
    assert q <= Q999_ABS, f"99.9% quantile {q:.4f}"
    assert float(diff.mean()) <= MEAN_ABS, f"mean diff {float(diff.mean()):.5f}"


def _reference(images: list[np.ndarray], **kw: object) -> torch.Tensor:
    tf = open_clip.image_transform(is_train=False, **kw)  # type: ignore[arg-type]
    return torch.stack([tf(Image.fromarray(im)) for im in images])


def _cfg(tf_kwargs: dict[str, object]) -> PreprocessCfg:
    size = tf_kwargs["image_size"]
    d = {
        "size": size,
        "mean": open_clip.OPENAI_DATASET_MEAN,
        "std": open_clip.OPENAI_DATASET_STD,
        "interpolation": tf_kwargs.get("interpolation", "bicubic"),
        "resize_mode": tf_kwargs.get("resize_mode", "shortest"),
    }
    return PreprocessCfg.from_open_clip(d)


@pytest.mark.parametrize("wh", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("image_size", [224, 64])
def test_matches_open_clip_transform(frames_by_size: dict, wh: tuple[int, int], image_size: int) -> None:
    frames = frames_by_size[wh]
    ref = _reference(frames, image_size=image_size)
    got = ClipPreprocessor(_cfg({"image_size": image_size}))(frames)
    assert got.shape == ref.shape == (len(frames), 3, image_size, image_size)
    _assert_close(got, ref)


@pytest.mark.parametrize("resize_mode", ["squash", "longest"])
def test_other_resize_modes(frames_by_size: dict, resize_mode: str) -> None:
    frames = frames_by_size[(320, 240)] + frames_by_size[(240, 320)]
    kw = {"image_size": 224, "resize_mode": resize_mode}
    ref = _reference(frames, **kw)
    got = ClipPreprocessor(_cfg(kw))(frames)
    _assert_close(got, ref)


def test_mixed_sizes_in_one_batch_keep_their_order(frames_by_size: dict) -> None:
    a, b = frames_by_size[(320, 240)], frames_by_size[(1280, 720)]
    mixed = [a[0], b[0], a[1], b[1]]
    pre = ClipPreprocessor(_cfg({"image_size": 64}))
    got = pre(mixed)
    alone = torch.cat([pre([im]) for im in mixed])
    assert torch.equal(got, alone)


def test_output_size_rule_matches_torchvision() -> None:
    cfg = _cfg({"image_size": 224})
    # torchvision truncates the long side: 640x360 → 398x224, 360x640 → 224x398
    assert resized_size(360, 640, cfg) == (224, 398)
    assert resized_size(640, 360, cfg) == (398, 224)
    assert resized_size(100, 100, cfg) == (224, 224)


def test_rejects_non_rgb_input() -> None:
    from framesift.errors import EngineError

    with pytest.raises(EngineError, match=r"expected \(H, W, 3\)"):
        ClipPreprocessor(_cfg({"image_size": 64}))([np.zeros((10, 10), np.uint8)])

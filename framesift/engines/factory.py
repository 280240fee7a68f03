"""``build_embedder(cfg)``: the embedder a pipeline config asks for.

Runtime, device and precision (``auto`` included) are decided by the engine plan
(:func:`framesift.engines.plan.plan_engine`) inside the embedder.
"""

from __future__ import annotations

import logging
import os

from framesift.config.engines import EngineConfig
from framesift.engines.base import Embedder
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines")

AUTO_MODEL = "ViT-B-32"
AUTO_PRETRAINED = ("openai", "laion2b_s34b_b79k", "laion2b_e16", "datacomp_xl_s13b_b90k")
ENABLE_CLIP_HINT = (
    "to enable CLIP set engine.model: ViT-B-32 with engine.pretrained: openai (downloaded once where "
    "the hub is reachable) or engine.checkpoint: /path/to/weights.pt, or run "
    "`framesift export clip --model ViT-B-32 --pretrained openai` on a machine with internet access"
)


def _pixel() -> Embedder:
    try:
        from framesift.engines.models.pixel import PixelEmbedder
    except ModuleNotFoundError as exc:  # pragma: no cover - ships with framesift
        raise EngineError(f"the pixel embedder is unavailable ({exc})", engine="pixel") from None
    return PixelEmbedder()


def find_local_clip_weights(model: str = AUTO_MODEL) -> str | None:
    """The first pretrained tag of ``model`` whose weights are already in open_clip's caches (no network)."""
    from framesift.engines.models.clip_weights import weight_caches_hold_clip

    if not weight_caches_hold_clip():
        return None
    try:
        import open_clip  # noqa: F401

        from framesift.engines.models.clip_weights import cached_pretrained_path
    except ImportError:
        return None
    for tag in AUTO_PRETRAINED:
        try:
            if cached_pretrained_path(model, tag) is not None:
                return tag
        except Exception:  # a broken cache entry is the same as none
            continue
    return None


def build_embedder(cfg: EngineConfig) -> Embedder:
    """``pixel`` → PixelEmbedder; an open_clip name → ClipEmbedder; ``auto`` → CLIP when its weights
    are present locally (checkpoint/onnx given, or open_clip's cache holds them), else ``pixel``
    with one warning saying how to enable CLIP."""
    if cfg.model == "pixel":
        return _pixel()
    common = dict(
        runtime=cfg.runtime,
        device=cfg.device,
        max_batch=cfg.max_batch,
        cache_dir=cfg.cache_dir,
    )
    if cfg.model == "auto":
        if cfg.checkpoint or cfg.onnx or cfg.pretrained:
            return _clip(AUTO_MODEL, cfg, common, offline=True)
        try:
            tag = find_local_clip_weights()
        except Exception:
            tag = None
        if tag is None:
            log.warning(
                "no CLIP weights on this machine: using the weight-free 'pixel' embedder; %s",
                ENABLE_CLIP_HINT,
            )
            return _pixel()
        return _clip(AUTO_MODEL, cfg.model_copy(update={"pretrained": tag}), common, offline=True)
    return _clip(cfg.model, cfg, common, offline=os.environ.get("HF_HUB_OFFLINE") == "1")


def _clip(model: str, cfg: EngineConfig, common: dict[str, object], *, offline: bool) -> Embedder:
    try:
        from framesift.engines.models.clip import ClipEmbedder
    except ImportError as exc:
        raise EngineError(
            f"CLIP needs the Python package {exc.name!r}: pip install 'framesift[clip]' "
            "(or set engine.model: pixel)",
            engine="clip",
        ) from None
    return ClipEmbedder(
        model,
        pretrained=cfg.pretrained,
        checkpoint=cfg.checkpoint,
        onnx=cfg.onnx,
        offline=offline,
        precision=cfg.precision,
        calibration=cfg.calibration,
        **common,  # type: ignore[arg-type]
    )

"""SAM-family segmenter: image encoder once per frame, prompt decoder batched over all its boxes.

Encoder and decoder are exported separately to ONNX and run on ONNX Runtime where the engine plan
(model ``sam``) puts them. ``vit_t`` (MobileSAM, reference code in the ``mobilesam-mirror``
package, Apache-2.0) is the default; ``vit_b/l/h`` come from ``segment-anything`` (Apache-2.0).
Reference packages are needed only to export; the runtime path needs ``onnxruntime`` and ``torch``
(pre/post-processing on the engine's device).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from framesift.engines.base import ImageLike, Segmenter, as_images
from framesift.engines.cache import EngineCache
from framesift.engines.export import export_key, export_onnx, weights_hash
from framesift.engines.models.detect_post import as_tensor_image
from framesift.engines.plan import Artefact, EnginePlan, plan_engine
from framesift.engines.runtimes.ort_runtime import OnnxSession
from framesift.engines.weights import check_weights_file, not_a_checkpoint
from framesift.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from framesift.engines.segmenters.sam import SamConfig

log = logging.getLogger("framesift.engines.sam")

KINDS = {
    "vit_t": "mobile_sam",
    "vit_b": "segment_anything",
    "vit_l": "segment_anything",
    "vit_h": "segment_anything",
}
PACKAGES = {"mobile_sam": "mobilesam-mirror", "segment_anything": "segment-anything"}
IMG_SIZE = 1024
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
OPSET = 17


def checkpoint_path(checkpoint: str | Path | None) -> str | None:
    """A SAM ``checkpoint`` option as a path, or None for random weights (None, '' or 'none', as
    ``--sam-checkpoint none`` and ``checkpoint: none`` in a config say)."""
    if checkpoint is None or str(checkpoint).strip().lower() in ("", "none"):
        return None
    return str(checkpoint)


def build_reference(kind: str = "vit_t", checkpoint: str | Path | None = None) -> nn.Module:
    """The reference ``Sam`` model of ``kind``; random weights when ``checkpoint`` is None (or 'none').

    A checkpoint that is missing, not a PyTorch file or made for another SAM model is a ConfigError
    (one line, exit 2)."""
    if kind not in KINDS:
        raise ConfigError(f"unknown SAM model {kind!r} (available: {', '.join(KINDS)})")
    path = checkpoint_path(checkpoint)
    fix = f"pass a SAM {kind} checkpoint (.pt/.pth), or none for random weights"
    if path is not None:
        check_weights_file(path, f"SAM {kind}", fix=fix, formats=("torch", "pickle"))
    module = KINDS[kind]
    try:
        registry = __import__(module).sam_model_registry
    except ModuleNotFoundError:
        raise EngineError(
            f"exporting SAM {kind} needs the optional package: pip install {PACKAGES[module]}", engine="sam"
        ) from None
    try:
        return registry[kind](checkpoint=path).eval()
    except Exception as exc:
        if path is None:
            raise
        raise not_a_checkpoint(path, f"SAM {kind}", exc, fix=fix) from None


def preprocess_shape(h: int, w: int, long_side: int = IMG_SIZE) -> tuple[int, int]:
    """Size after resizing the longest side to ``long_side`` (as SAM's ``ResizeLongestSide``)."""
    scale = long_side / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


class EncoderExport(nn.Module):
    """``(1, 3, 1024, 1024)`` normalised, padded image → ``(1, 256, 64, 64)`` image embeddings."""

    def __init__(self, sam: Any) -> None:
        super().__init__()
        self.encoder = sam.image_encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoder: Any = self.encoder
        return encoder(x)


class DecoderExport(nn.Module):
    """One image's embeddings + ``(N, 4)`` boxes (xyxy, 1024-input pixels) → ``(N, 1, 256, 256)``
    low-resolution mask logits and ``(N, 1)`` predicted IoU — SAM's single-mask output, with the
    image expanded (not copied) over the N prompts."""

    def __init__(self, sam: Any) -> None:
        super().__init__()
        self.pe = sam.prompt_encoder
        self.dec = sam.mask_decoder
        self.register_buffer("image_pe", sam.prompt_encoder.get_dense_pe().detach(), persistent=False)

    def forward(
        self, image_embeddings: torch.Tensor, boxes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pe: Any = self.pe
        dec: Any = self.dec
        n = boxes.shape[0]
        coords = boxes.reshape(-1, 2, 2) + 0.5
        corners = pe.pe_layer.forward_with_coords(coords, pe.input_image_size)
        corner_w = torch.stack([pe.point_embeddings[2].weight[0], pe.point_embeddings[3].weight[0]])
        sparse = corners + corner_w.unsqueeze(0)
        dense = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], 0)
        tokens = torch.cat((out_tokens.unsqueeze(0).expand(n, -1, -1), sparse), 1)
        src = (image_embeddings + dense).expand(n, -1, -1, -1)
        image_pe: Any = self.image_pe
        pos = image_pe.expand(n, -1, -1, -1)
        _, c, h, w = image_embeddings.shape
        hs, src = dec.transformer(src, pos, tokens)
        src = src.transpose(1, 2).reshape(n, c, h, w)
        up = dec.output_upscaling(src)
        hyper = dec.output_hypernetworks_mlps[0](hs[:, 1, :]).unsqueeze(1)  # mask token 0: single mask
        masks = (hyper @ up.flatten(2)).reshape(n, 1, up.shape[2], up.shape[3])
        iou = dec.iou_prediction_head(hs[:, 0, :])[:, 0:1]
        return masks, iou


def export_encoder(sam: Any, path: str | Path, opset: int = OPSET) -> Path:
    """The image encoder as ONNX: one ``(1, 3, 1024, 1024)`` image (static shapes)."""
    export_onnx(
        EncoderExport(sam).eval(),
        (torch.zeros(1, 3, IMG_SIZE, IMG_SIZE),),
        path,
        input_names=["image"],
        output_names=["image_embeddings"],
        dynamic_axes={},
        opset=opset,
        exporter="legacy",
        fallback=False,
        label="SAM encoder",
    )
    return Path(path)


def export_decoder(sam: Any, path: str | Path, opset: int = OPSET) -> Path:
    """The prompt decoder as ONNX: one image's embeddings, any number of boxes."""
    emb = torch.zeros(1, 256, IMG_SIZE // 16, IMG_SIZE // 16)
    boxes = torch.tensor([[10.0, 20.0, 300.0, 400.0], [0.0, 0.0, 100.0, 100.0]])
    export_onnx(
        DecoderExport(sam).eval(),
        (emb, boxes),
        path,
        input_names=["image_embeddings", "boxes"],
        output_names=["low_res_masks", "iou_predictions"],
        dynamic_axes={
            "boxes": {0: "boxes"},
            "low_res_masks": {0: "boxes"},
            "iou_predictions": {0: "boxes"},
        },
        opset=opset,
        exporter="legacy",
        fallback=False,
        label="SAM decoder",
    )
    return Path(path)


def preprocess(image: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB → ``(1, 3, 1024, 1024)`` normalised and zero-padded, on ``device``.

    Resize is bilinear with antialiasing rounded to uint8 (what SAM's PIL resize does), as tensor ops.
    """
    h, w = int(image.shape[0]), int(image.shape[1])
    nh, nw = preprocess_shape(h, w)
    x = as_tensor_image(image, device).permute(2, 0, 1)[None].float()
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255)
    mean = torch.tensor(PIXEL_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return F.pad(x, (0, IMG_SIZE - nw, 0, IMG_SIZE - nh))


def postprocess_masks(
    low_res: torch.Tensor, orig_hw: tuple[int, int], threshold: float = 0.0
) -> torch.Tensor:
    """``(N, 1, 256, 256)`` logits → ``(N, H, W)`` bool masks at frame resolution (SAM's upscaling)."""
    h, w = orig_hw
    nh, nw = preprocess_shape(h, w)
    m = F.interpolate(low_res, (IMG_SIZE, IMG_SIZE), mode="bilinear", align_corners=False)
    m = m[..., :nh, :nw]
    m = F.interpolate(m, (h, w), mode="bilinear", align_corners=False)
    return m[:, 0] > threshold


class SamSegmenter(Segmenter):
    """SAM on ONNX Runtime (device from the engine plan): :meth:`embed` once per frame,
    :meth:`decode` all boxes in one call.

    ``source``: ``vit_t`` (default) / ``vit_b`` / ``vit_l`` / ``vit_h`` with ``checkpoint`` (random
    weights when None: tests and benchmarks only), a reference ``Sam`` module, or a directory holding
    ``encoder.onnx`` and ``decoder.onnx``.
    """

    name = "sam"

    def __init__(
        self,
        source: str | Path | nn.Module = "vit_t",
        *,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        cache: EngineCache | None = None,
        max_boxes: int = 64,
        threshold: float = 0.0,
        runtime: str = "auto",
    ) -> None:
        self.cache = cache or EngineCache()
        self.max_boxes = max_boxes
        self.threshold = threshold
        folder = None if isinstance(source, nn.Module) or str(source) in KINDS else str(source)
        self.plan: EnginePlan = plan_engine(
            "sam", runtime=runtime, device=device, artefact=Artefact(folder, "onnx") if folder else None
        )
        log.info("SAM: %s", self.plan.describe())
        enc_path, dec_path = self._resolve(source, checkpoint)
        self.encoder = self._session(enc_path, threads)
        self.decoder = self._session(dec_path, threads)
        self.torch_device = "cuda" if "CUDAExecutionProvider" in self.encoder.providers else "cpu"

    def _session(self, path: Path, threads: int | None) -> Any:
        """The graph at ``path`` on the planned runtime (OpenVINO: its IR, cached)."""
        if self.plan.runtime != "openvino":
            return OnnxSession(path, device=self.plan.device, threads=threads)
        from framesift.engines.cache import file_sha256
        from framesift.engines.runtimes.openvino_runtime import OpenVinoSession, openvino_engine

        rt, ir = openvino_engine(
            self.cache,
            path,
            label=f"sam/{path.stem}",
            weights_hash=file_sha256(path),
            device=self.plan.device,
            precision=self.plan.precision,
            threads=threads,
        )
        return OpenVinoSession(rt, ir)

    @classmethod
    def from_config(cls, cfg: SamConfig, *, cache: EngineCache | None = None) -> SamSegmenter:
        """The segmenter a :class:`~framesift.engines.segmenters.sam.SamConfig` describes."""
        return cls(
            cfg.model, checkpoint=cfg.checkpoint, device=cfg.device, max_boxes=cfg.max_boxes, cache=cache
        )

    def _resolve(self, source: str | Path | nn.Module, checkpoint: str | Path | None) -> tuple[Path, Path]:
        if isinstance(source, nn.Module):
            return self._export_cached(source)
        text = str(source)
        if text in KINDS:
            checkpoint = checkpoint_path(checkpoint)
            if checkpoint is None:
                log.warning("SAM %s with RANDOM weights (benchmark/test only)", text)
                torch.manual_seed(0)
            return self._export_cached(build_reference(text, checkpoint))
        folder = Path(text)
        enc, dec = folder / "encoder.onnx", folder / "decoder.onnx"
        if not (enc.exists() and dec.exists()):
            raise ConfigError(
                f"SAM model {text!r}: expected one of {', '.join(KINDS)} or a folder with encoder.onnx "
                "and decoder.onnx"
            )
        return enc, dec

    def _export_cached(self, sam: nn.Module) -> tuple[Path, Path]:
        weights = weights_hash(sam)
        enc_key = export_key("sam/encoder", weights, shape_profile={"image": IMG_SIZE}, opset=OPSET)
        dec_key = export_key(
            "sam/decoder", weights, shape_profile={"boxes": "dynamic"}, opset=OPSET, single_mask=True
        )

        def build_encoder(tmp: Path) -> None:
            export_encoder(sam, tmp)

        def build_decoder(tmp: Path) -> None:
            export_decoder(sam, tmp)

        enc = self.cache.get_or_build(enc_key, "sam_encoder.onnx", build_encoder)
        dec = self.cache.get_or_build(dec_key, "sam_decoder.onnx", build_decoder)
        return enc, dec

    def embed(self, image: ImageLike) -> np.ndarray:
        """Run the image encoder once: (1, 256, 64, 64) embeddings."""
        img = as_images([image])[0]
        x = preprocess(img, self.torch_device)
        return self.encoder.run({"image": np.ascontiguousarray(x.cpu().numpy())})[0]

    def decode(
        self, embeddings: np.ndarray, boxes: np.ndarray, orig_hw: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 4) xyxy in frame pixels → ((N, H, W) bool masks, (N,) predicted IoU)."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        h, w = orig_hw
        if len(boxes) == 0:
            return np.zeros((0, h, w), bool), np.zeros((0,), np.float32)
        nh, nw = preprocess_shape(h, w)
        scale = np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
        masks, ious = [], []
        for start in range(0, len(boxes), self.max_boxes):
            chunk = boxes[start : start + self.max_boxes] * scale
            low, iou = self.decoder.run(
                {"image_embeddings": embeddings, "boxes": np.ascontiguousarray(chunk)}
            )
            m = postprocess_masks(torch.from_numpy(low).to(self.torch_device), orig_hw, self.threshold)
            masks.append(m.cpu().numpy())
            ious.append(iou[:, 0])
        return np.concatenate(masks), np.concatenate(ious)

    def segment(self, image: ImageLike, boxes: np.ndarray) -> np.ndarray:
        img = as_images([image])[0]
        masks, _ = self.decode(self.embed(img), boxes, (int(img.shape[0]), int(img.shape[1])))
        return masks

    def close(self) -> None:
        self.encoder.close()
        self.decoder.close()

    def segment_detections(self, image: ImageLike, detections: Any) -> Any:
        """Fill ``detections.mask`` (N, H, W) for the boxes of one frame; returns ``detections``."""
        img = as_images([image])[0]
        if len(detections) == 0:
            detections.mask = np.zeros((0, img.shape[0], img.shape[1]), bool)
            return detections
        detections.mask = self.segment(img, detections.xyxy)
        return detections


def segment_batch(
    segmenter: SamSegmenter, images: Sequence[ImageLike], detections: Sequence[Any]
) -> list[Any]:
    """Masks for each frame's detections (encoder once per frame, decoder batched per frame)."""
    return [segmenter.segment_detections(img, det) for img, det in zip(images, detections, strict=True)]

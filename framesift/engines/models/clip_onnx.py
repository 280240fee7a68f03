"""CLIP's ONNX towers: the torch modules exported, the metadata that makes an export
self-describing (:class:`ClipInfo`), and the checks that refuse a file that is not a framesift CLIP
tower of the expected kind and size."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framesift.engines.models.clip_preprocess import PreprocessCfg
from framesift.errors import EngineError

IMAGE_INPUT, IMAGE_OUTPUT = "image", "image_embeds"
TEXT_INPUT, TEXT_OUTPUT = "text", "text_embeds"
ONNX_OPSET = 18
META_PREFIX = "framesift."


def towers(model: Any) -> tuple[Any, Any]:
    """``(image tower, text tower)``: modules whose ``forward`` is ``encode_image`` / ``encode_text``
    of ``model`` (un-normalised embeddings)."""
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.m.encode_image(image)

    class TextTower(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            return self.m.encode_text(text)

    return ImageTower(model).eval(), TextTower(model).eval()


@dataclass(frozen=True)
class ClipInfo:
    """What a runtime needs besides the graph: written into ONNX metadata on export."""

    model: str
    pretrained: str
    embed_dim: int
    logit_scale: float
    context_length: int
    preprocess: PreprocessCfg
    weights_hash: str

    def metadata(self, kind: str) -> dict[str, str]:
        return {
            f"{META_PREFIX}kind": kind,
            f"{META_PREFIX}model": self.model,
            f"{META_PREFIX}pretrained": self.pretrained,
            f"{META_PREFIX}embed_dim": str(self.embed_dim),
            f"{META_PREFIX}logit_scale": repr(self.logit_scale),
            f"{META_PREFIX}context_length": str(self.context_length),
            f"{META_PREFIX}preprocess": json.dumps(self.preprocess.as_dict()),
            f"{META_PREFIX}weights_hash": self.weights_hash,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str) -> ClipInfo:
        try:
            return cls(
                model=meta[f"{META_PREFIX}model"],
                pretrained=meta.get(f"{META_PREFIX}pretrained", ""),
                embed_dim=int(meta[f"{META_PREFIX}embed_dim"]),
                logit_scale=float(meta[f"{META_PREFIX}logit_scale"]),
                context_length=int(meta[f"{META_PREFIX}context_length"]),
                preprocess=PreprocessCfg.from_open_clip(json.loads(meta[f"{META_PREFIX}preprocess"])),
                weights_hash=meta.get(f"{META_PREFIX}weights_hash", ""),
            )
        except (KeyError, ValueError) as exc:
            raise EngineError(
                f"{where}: not a framesift CLIP export (metadata {exc} missing or invalid); "
                "export one with: framesift export clip --model NAME --runtime onnxruntime --out DIR",
                engine="clip",
            ) from None


def model_info(model: Any, name: str, pretrained: str, pre: PreprocessCfg, whash: str) -> ClipInfo:
    import torch

    with torch.no_grad():
        scale = float(model.logit_scale.exp().item()) if hasattr(model, "logit_scale") else 100.0
    dim = int(getattr(model.visual, "output_dim", 0) or model.text_projection.shape[1])
    ctx = int(getattr(model, "context_length", 77))
    return ClipInfo(name, pretrained, dim, scale, ctx, pre, whash)


def read_onnx_metadata(path: Path) -> tuple[dict[str, str], list[Any], list[Any]]:
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EngineError(
            f"{path}: not a readable ONNX file ({exc})".splitlines()[0], engine="clip"
        ) from None
    meta = {p.key: p.value for p in m.metadata_props}
    return meta, list(m.graph.input), list(m.graph.output)


def _dims(value_info: Any) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def validate_onnx(path: Path, kind: str, expect_dim: int | None = None) -> ClipInfo:
    """Check that ``path`` is a framesift CLIP ``kind`` ('image' | 'text') tower; EngineError otherwise."""
    meta, inputs, outputs = read_onnx_metadata(path)
    want_in, want_out = (IMAGE_INPUT, IMAGE_OUTPUT) if kind == "image" else (TEXT_INPUT, TEXT_OUTPUT)
    got_in = {i.name: _dims(i) for i in inputs}
    got_out = {o.name: _dims(o) for o in outputs}
    expected = (
        f"expected input {want_in!r} "
        + ("(batch, 3, H, W)" if kind == "image" else "(batch, context_length) int64")
        + f" and output {want_out!r} (batch, dim)"
    )
    if list(got_in) != [want_in] or list(got_out) != [want_out]:
        raise EngineError(
            f"{path}: mismatched CLIP {kind} ONNX: has inputs {got_in} and outputs {got_out}; {expected}",
            engine="clip",
        )
    info = ClipInfo.from_metadata(meta, str(path))
    dims_in, dims_out = got_in[want_in], got_out[want_out]
    ok_in = len(dims_in) == 4 and dims_in[1] == 3 if kind == "image" else len(dims_in) == 2
    if kind == "image" and ok_in and tuple(dims_in[2:]) != tuple(info.preprocess.size):
        ok_in = False
    if not ok_in or len(dims_out) != 2 or dims_out[1] != info.embed_dim:
        raise EngineError(
            f"{path}: mismatched CLIP {kind} ONNX: input {want_in} {dims_in}, output {want_out} {dims_out}, "
            f"metadata embed_dim {info.embed_dim} image size {list(info.preprocess.size)}; {expected}",
            engine="clip",
        )
    if expect_dim is not None and info.embed_dim != expect_dim:
        raise EngineError(
            f"{path}: CLIP {kind} tower has dim {info.embed_dim} but the image tower has {expect_dim} "
            "(the two files come from different models)",
            engine="clip",
        )
    return info


def text_onnx_for(image_onnx: Path) -> Path | None:
    """The text tower exported beside ``image_onnx`` (``image.onnx`` → ``text.onnx``), if present."""
    name = image_onnx.name
    cand = image_onnx.with_name(name.replace("image", "text")) if "image" in name else None
    return cand if cand is not None and cand.is_file() else None

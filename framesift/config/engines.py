"""Configuration of the embedding engine (CLIP on a runtime, or the weight-free ``pixel`` embedder)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from framesift.config.sources import Strict


class EngineConfig(Strict):
    """Which embedder runs, on which runtime/device/precision.

    ``model``: ``auto`` (CLIP ViT-B-32 when its weights are on this machine, else ``pixel`` with a
    warning), ``pixel``, or any open_clip architecture name (``ViT-B-32``, ``ViT-L-14``...).
    Weights: ``pretrained`` (an open_clip tag such as ``openai`` or ``laion2b_s34b_b79k``;
    downloaded by open_clip where a hub is reachable), ``checkpoint`` (a local file), or ``onnx``
    (a framesift export: ``image.onnx`` or the directory holding it and ``text.onnx``).
    """

    model: str = Field("auto", min_length=1)
    pretrained: str | None = None
    checkpoint: str | None = None
    onnx: str | None = None
    runtime: Literal["auto", "torch", "onnxruntime", "tensorrt", "openvino"] = "auto"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8"] = Field(
        "auto",
        description="auto: fp16 on CUDA; bf16 on CPUs with native bf16 (AMX / AVX512-BF16) when torch "
        "runs the model; otherwise fp32. int8 (opt-in; OpenVINO where the CPU has VNNI, else torch with "
        "CLIP's Linear layers quantised dynamically): refused in one line where its parity gate against "
        "fp32 fails on held-out calibration frames",
    )
    calibration: str | None = Field(
        None, description="precision int8: a video whose frames calibrate it; default: generated frames"
    )
    max_batch: int = Field(64, ge=1, le=4096)
    cache_dir: str | None = Field(
        None, description="engine cache; default $FRAMESIFT_CACHE or ~/.cache/framesift/engines"
    )

    @model_validator(mode="after")
    def _one_weight_source(self) -> EngineConfig:
        given = [k for k in ("pretrained", "checkpoint", "onnx") if getattr(self, k)]
        if len(given) > 1:
            raise ValueError(f"give only one of pretrained, checkpoint, onnx (got {', '.join(given)})")
        if self.model == "pixel" and given:
            raise ValueError(f"model 'pixel' has no weights; remove {given[0]}")
        return self

"""Detector ``type: yolo_world``: YOLO-World v2, open-vocabulary boxes for text prompts.

The implementation is :class:`framesift.engines.models.yolo_world.YoloWorld` (imported on use).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from framesift.config.base import DetectorSpec


class YoloWorldConfig(DetectorSpec):
    """YOLO-World v2: ``model`` is an exported ``.onnx`` or ``.pt2``, a ``.pt`` checkpoint (export needs
    the optional AGPL ``ultralytics`` package) or a variant ``s/m/l/x`` (random weights: benchmarks only)."""

    implementation: ClassVar[str] = "framesift.engines.models.yolo_world:YoloWorld"
    extra: ClassVar[str | None] = "clip"

    type: Literal["yolo_world"] = "yolo_world"
    model: str = "s"
    prompts: list[str] = Field(min_length=1, description="text prompts; each becomes a class")
    imgsz: int = Field(640, ge=32, le=4096, multiple_of=32)
    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.7, ge=0, le=1)
    max_det: int = Field(300, ge=1)
    max_batch: int = Field(16, ge=1, le=1024)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["auto", "onnxruntime", "torch", "openvino"] = Field(
        "auto", description="auto: PyTorch on CUDA or on CPUs with native bf16, else ONNX Runtime"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32; int8 (OpenVINO, "
        "opt-in): quantised on calibration frames, refused where its parity gate fails",
    )
    calibration: str | None = Field(
        None, description="precision int8: a video whose frames calibrate it; default: generated frames"
    )
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = Field(
        "openai", description="open_clip tag or local checkpoint; None = random"
    )

    @field_validator("prompts")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not p.strip() for p in v):
            raise ValueError("prompts must be non-empty strings")
        return v

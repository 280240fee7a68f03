"""Segmenter ``type: sam``: SAM-family masks for detection boxes.

The implementation is :class:`framesift.engines.models.sam.SamSegmenter` (imported on use).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.base import SegmenterSpec


class SamConfig(SegmenterSpec):
    """SAM family: ``vit_t`` (MobileSAM) default, ``vit_b/l/h``, or a folder with encoder/decoder ONNX."""

    implementation: ClassVar[str] = "framesift.engines.models.sam:SamSegmenter"
    extra: ClassVar[str | None] = "clip"

    type: Literal["sam"] = "sam"
    model: str = "vit_t"
    checkpoint: str | None = None
    max_boxes: int = Field(64, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"

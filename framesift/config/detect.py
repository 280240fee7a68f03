"""Configuration models for open-vocabulary detection, segmentation, tracking and their sinks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from framesift.config.sinks import SinkCommon
from framesift.config.sources import Strict


class DetectorConfig(Strict):
    """YOLO-World v2: ``model`` is an exported ``.onnx`` or ``.pt2``, a ``.pt`` checkpoint (export needs
    the optional AGPL ``ultralytics`` package) or a variant ``s/m/l/x`` (random weights: benchmarks only)."""

    type: Literal["yolo_world"] = "yolo_world"
    model: str = "s"
    prompts: list[str] = Field(min_length=1, description="text prompts; each becomes a class")
    imgsz: int = Field(640, ge=32, le=4096, multiple_of=32)
    conf: float = Field(0.25, ge=0, le=1)
    iou: float = Field(0.7, ge=0, le=1)
    max_det: int = Field(300, ge=1)
    max_batch: int = Field(16, ge=1, le=1024)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    runtime: Literal["auto", "onnxruntime", "torch"] = Field(
        "auto", description="auto: PyTorch on CUDA or on CPUs with native bf16, else ONNX Runtime"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: fp16 on CUDA, bf16 on AMX/AVX512-BF16 CPUs, else fp32"
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


class SegmenterConfig(Strict):
    """SAM family: ``vit_t`` (MobileSAM) default, ``vit_b/l/h``, or a folder with encoder/decoder ONNX."""

    model: str = "vit_t"
    checkpoint: str | None = None
    max_boxes: int = Field(64, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"


class ZoneConfig(Strict):
    """A polygon zone (frame pixels); its occupancy per class is reported when it changes."""

    name: str
    polygon: list[tuple[int, int]] = Field(min_length=3)


class LineConfig(Strict):
    """A counting line from ``start`` to ``end`` (frame pixels); crossings in/out are counted."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]


class TrackerConfig(Strict):
    """Analyzer ``tracker``: detector → (optional SAM) → ByteTrack per source → track events."""

    type: Literal["tracker"] = "tracker"
    detector: DetectorConfig
    segment: SegmenterConfig | None = None
    update_every_s: float = Field(5.0, gt=0, description="at most one 'updated' event per track per period")
    lost_after_s: float = Field(1.0, gt=0, description="a track unseen this long ends")
    activation_threshold: float = Field(0.25, ge=0, le=1)
    min_frames: int = Field(1, ge=1, description="frames before a track is confirmed")
    crops_dir: str | None = Field(None, description="save best crops as JPEG here; None = inline data URI")
    crop_max_side: int = Field(256, ge=16)
    per_frame_events: bool = Field(False, description="also emit one 'detections' event per frame")
    zones: list[ZoneConfig] = Field(default_factory=list)
    lines: list[LineConfig] = Field(default_factory=list)


class VideoSinkConfig(SinkCommon):
    """Annotated video of each source (boxes, labels, masks), same fps and timestamps as the source."""

    type: Literal["video"] = "video"
    path: str = Field(description="output file; '{source}' is replaced by the source id")
    codec: str = "libx264"
    crf: int = Field(23, ge=0, le=51)
    masks: bool = True
    labels: bool = True


class DetectionsSinkConfig(SinkCommon):
    """Detections as JSON lines: one line per track event, or per frame when ``per: frame``."""

    type: Literal["detections"] = "detections"
    path: str
    per: Literal["track", "frame"] = "track"

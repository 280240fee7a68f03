"""``type: labels``: every frame's detections (a ``detect`` analyzer's ``detections`` events) as a
COCO or YOLO dataset that training tools read — images plus annotations, one writer for both
``framesift label`` and pipeline configs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from framesift.config.sinks import SinkSpec
from framesift.errors import SinkError
from framesift.events import Event, FrameDetections
from framesift.labels import LabeledImage, LabelWriter
from framesift.sinks.base import Sink


class LabelsSinkConfig(SinkSpec):
    """A labelled dataset of the frames and their detections."""

    type: Literal["labels"] = "labels"
    implementation: ClassVar[str] = "LabelsSink"
    needs_frames: ClassVar[bool] = True

    dir: str = Field(description="dataset folder (created)")
    format: Literal["coco", "yolo"] = "coco"
    masks: Literal["rle", "polygon"] = Field("rle", description="COCO mask encoding")
    classes: list[str] = Field(min_length=1, description="class names: the detector's prompts, in order")
    queue_size: int = Field(16, ge=1, le=10_000, description="frames waiting (each carries its picture)")


class LabelsSink(Sink):
    """Frames are named by ``frame.meta["name"]`` (a stored frame's id, an image's path), else
    ``<source>_<index>``."""

    name = "labels"
    accepts = (FrameDetections,)
    drain_s = None  # local files: everything queued is written before shutdown ends

    def __init__(self, cfg: LabelsSinkConfig) -> None:
        self.cfg = cfg
        self.writer: LabelWriter | None = None
        self.counts: dict[str, int] = {"images": 0, "annotations": 0}

    @classmethod
    def from_config(cls, cfg: LabelsSinkConfig) -> LabelsSink:
        return cls(cfg)

    def open(self) -> None:
        self.writer = LabelWriter(
            Path(self.cfg.dir), list(self.cfg.classes), fmt=self.cfg.format, mask_format=self.cfg.masks
        )

    def write(self, event: Event) -> None:
        if self.writer is None or not isinstance(event, FrameDetections) or event.frame is None:
            return
        frame = event.frame
        name = frame.meta.get("name") or f"{frame.source_id}_{frame.index:08d}"
        try:
            self.writer.add(LabeledImage(str(name), frame.image, event.detections))
        except OSError as exc:
            raise SinkError(
                f"{self.cfg.dir}: cannot write {name} ({exc.strerror or exc})", transient=False
            ) from None

    def close(self) -> None:
        if self.writer is not None:
            self.counts = self.writer.close()
            self.writer = None

"""Annotated video sink: boxes, labels and masks drawn with supervision, encoded with PyAV.

Consumes ``detections`` events (:class:`framesift.events.FrameDetections`, one per
frame, carrying the frame). Each source gets its own file; every output frame keeps the source
frame's ``pts`` in the source's ``time_base`` so the video has the same frame count, rate and
timestamps as the source. Files are written under a temporary name and renamed on close.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Literal

import av
import numpy as np
from pydantic import Field

from framesift.config.sinks import SinkSpec
from framesift.errors import SinkError
from framesift.events import Event, FrameDetections, SourceStatus
from framesift.sinks.base import Sink

log = logging.getLogger("framesift.sinks.video")


class VideoSinkConfig(SinkSpec):
    """Annotated video of each source (boxes, labels, masks), same fps and timestamps as the source."""

    type: Literal["video"] = "video"
    implementation: ClassVar[str] = "VideoSink"
    needs_frames: ClassVar[bool] = True

    path: str = Field(description="output file; '{source}' is replaced by the source id")
    codec: str = "libx264"
    crf: int = Field(23, ge=0, le=51)
    masks: bool = True
    labels: bool = True
    queue_size: int = Field(16, ge=1, le=10_000, description="frames waiting (each carries its picture)")


def labels_for(det: Any) -> list[str]:
    """``#track class 0.87`` per detection (parts that are present)."""
    names = det.data.get("class_name") if det.data else None
    out = []
    for i in range(len(det)):
        parts = []
        if det.tracker_id is not None:
            parts.append(f"#{int(det.tracker_id[i])}")
        parts.append(str(names[i]) if names is not None else str(int(det.class_id[i])))
        if det.confidence is not None:
            parts.append(f"{float(det.confidence[i]):.2f}")
        out.append(" ".join(parts))
    return out


class Annotator:
    """supervision's box, label and mask annotators in one call."""

    def __init__(self, *, masks: bool = True, labels: bool = True) -> None:
        import supervision as sv

        self.box = sv.BoxAnnotator(thickness=2)
        self.label = sv.LabelAnnotator(text_scale=0.4, text_padding=3) if labels else None
        self.mask = sv.MaskAnnotator(opacity=0.4) if masks else None

    def __call__(self, image: np.ndarray, det: Any) -> np.ndarray:
        scene = np.array(image, copy=True)
        if det is None or len(det) == 0:
            return scene
        if self.mask is not None and det.mask is not None:
            scene = self.mask.annotate(scene, det)
        scene = self.box.annotate(scene, det)
        if self.label is not None:
            scene = self.label.annotate(scene, det, labels=labels_for(det))
        return scene


@dataclass
class _Out:
    final: Path
    tmp: Path
    container: Any
    stream: Any
    last_pts: int | None = None
    frames: int = 0


class VideoSink(Sink):
    """Writes one annotated video per source; ``path`` may contain ``{source}``."""

    accepts = (FrameDetections, SourceStatus)
    drain_s = None  # a local file: the frames queued at shutdown are encoded, not cut off

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        codec: str = "libx264",
        crf: int = 23,
        masks: bool = True,
        labels: bool = True,
        fps: Fraction | float | None = None,
        name: str = "video",
    ) -> None:
        self.path = str(path)
        self.codec, self.crf, self.fps = codec, crf, fps
        self.annotate = Annotator(masks=masks, labels=labels)
        self.name = name
        self._outs: dict[str, _Out] = {}
        self._rates: dict[str, float] = {}  # each source's nominal rate, from its "up" status

    @classmethod
    def from_config(cls, cfg: VideoSinkConfig) -> VideoSink:
        return cls(
            cfg.path,
            codec=cfg.codec,
            crf=cfg.crf,
            masks=cfg.masks,
            labels=cfg.labels,
            name=cfg.name or "video",
        )

    def _target(self, source: str) -> Path:
        if "{source}" in self.path:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in source)
            return Path(self.path.replace("{source}", safe))
        if self._outs:
            raise SinkError(
                f"video sink {self.name!r}: several sources write to {self.path}; put '{{source}}' in the path",
                sink=self.name,
                transient=False,
            )
        return Path(self.path)

    def _open(self, source: str, frame: Any) -> _Out:
        final = self._target(source)
        tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(tmp), "w")
            fps = self.fps or self._rates.get(source) or frame.meta.get("fps") or 30
            rate = Fraction(fps).limit_denominator(100000)
            stream: Any = container.add_stream(self.codec, rate=rate)
            h, w = frame.height, frame.width
            stream.width, stream.height = w - w % 2, h - h % 2
            stream.pix_fmt = "yuv420p"
            stream.time_base = frame.time_base
            stream.codec_context.time_base = frame.time_base
            if self.codec in ("libx264", "libx265"):
                stream.options = {"crf": str(self.crf)}
        except (OSError, av.FFmpegError, ValueError) as exc:
            raise SinkError(f"video sink {self.name!r}: cannot open {final}: {exc}", sink=self.name) from exc
        out = _Out(final, tmp, container, stream)
        self._outs[source] = out
        return out

    def write(self, event: Event) -> None:
        if isinstance(event, SourceStatus):
            if event.state == "up" and event.fps:
                self._rates[event.source] = event.fps
            return
        if not isinstance(event, FrameDetections):
            return
        frame = event.frame
        if frame is None or not isinstance(frame.image, np.ndarray):
            return
        out = self._outs.get(event.source) or self._open(event.source, frame)
        if out.last_pts is not None and frame.pts <= out.last_pts:
            log.warning("video sink %s: non-increasing pts %d skipped", self.name, frame.pts)
            return
        image = self.annotate(frame.image, event.detections)
        image = image[: out.stream.height, : out.stream.width]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        vf.pts = frame.pts
        vf.time_base = frame.time_base
        try:
            for packet in out.stream.encode(vf):
                out.container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(
                f"video sink {self.name!r}: cannot write {out.final}: {exc}", sink=self.name
            ) from exc
        out.last_pts = frame.pts
        out.frames += 1

    def close_source(self, source: str) -> Path | None:
        """Finish ``source``'s file (flush the encoder, rename into place); its final path."""
        out = self._outs.pop(source, None)
        if out is None:
            return None
        try:
            for packet in out.stream.encode(None):
                out.container.mux(packet)
            out.container.close()
            os.replace(out.tmp, out.final)
        except (OSError, av.FFmpegError) as exc:
            out.tmp.unlink(missing_ok=True)
            raise SinkError(
                f"video sink {self.name!r}: cannot finish {out.final}: {exc}", sink=self.name
            ) from exc
        return out.final

    def close(self) -> None:
        for source in list(self._outs):
            self.close_source(source)

"""Annotated video sink: boxes, labels and masks drawn with supervision, encoded with PyAV.

Consumes ``detections`` events (:class:`framesift.events.FrameDetections`, one per
frame, carrying the frame). Each source gets its own file; every output frame keeps the source
frame's ``pts`` in the source's ``time_base`` so the video has the same frame count, rate and
timestamps as the source. Where a stream's timestamps go backwards or repeat (concatenated
segments, a camera's clock reset), the frames after the jump are shifted to follow the last written
one by one frame duration: every frame is written, and the jump is logged once per source.
Frames are cropped to even sizes (yuv420p); a source whose frames are smaller than 2x2 gets no
file (one warning, one failed write). Files are written under a temporary name and renamed on
close; a file that cannot be finished leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
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
from framesift.stream.split import even_size

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
    step: int  # one frame's duration in the stream's time base (at least 1)
    last_pts: int | None = None
    frames: int = 0
    offset: int = 0  # added to source pts since the stream's timestamps last went backwards
    rebased: int = 0  # frames whose pts were shifted


def _discard(out: _Out) -> None:
    """Close ``out``'s container without finishing it and remove its temporary file."""
    with contextlib.suppress(OSError, av.FFmpegError, ValueError):
        out.container.close()
    out.tmp.unlink(missing_ok=True)


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
        self._refused: set[str] = set()  # sources whose frames cannot be encoded (too small)

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
        h, w = frame.height, frame.width
        if 0 in even_size(w, h):  # a 1-pixel side is cropped to nothing
            self._refused.add(source)  # one failure for the source, not one per frame
            raise SinkError(
                f"video sink {self.name!r}: {w}x{h} frames are too small to encode (at least "
                f"2x2); {final} is not written",
                sink=self.name,
                transient=False,
            )
        tmp = final.with_name(f".{final.stem}.partial{final.suffix}")
        container = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(tmp), "w")
            fps = self.fps or self._rates.get(source) or frame.meta.get("fps") or 30
            rate = Fraction(fps).limit_denominator(100000)
            stream: Any = container.add_stream(self.codec, rate=rate)
            stream.width, stream.height = even_size(w, h)
            stream.pix_fmt = "yuv420p"
            stream.time_base = frame.time_base
            stream.codec_context.time_base = frame.time_base
            if self.codec in ("libx264", "libx265"):
                stream.options = {"crf": str(self.crf)}
        except (OSError, av.FFmpegError, ValueError) as exc:
            if container is not None:
                container.close()
            tmp.unlink(missing_ok=True)
            raise SinkError(f"video sink {self.name!r}: cannot open {final}: {exc}", sink=self.name) from exc
        step = max(1, round(1 / (rate * Fraction(frame.time_base)))) if frame.time_base else 1
        out = _Out(final, tmp, container, stream, step)
        self._outs[source] = out
        return out

    def _pts(self, out: _Out, source: str, pts: int) -> int:
        """``pts`` in the output: shifted past the last written frame when the source's timestamps
        went backwards or repeated (logged once per source)."""
        if out.last_pts is not None and pts + out.offset <= out.last_pts:
            if out.rebased == 0:
                log.warning(
                    "video sink %s: %s's timestamps go back (pts %d after %d); the frames from there "
                    "on are shifted to follow the last written one",
                    self.name,
                    source,
                    pts + out.offset,
                    out.last_pts,
                )
            out.offset = out.last_pts + out.step - pts
        if out.offset:
            out.rebased += 1
        return pts + out.offset

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
        if event.source in self._refused:
            return
        out = self._outs.get(event.source) or self._open(event.source, frame)
        pts = self._pts(out, event.source, frame.pts)
        image = self.annotate(frame.image, event.detections)
        image = image[: out.stream.height, : out.stream.width]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        vf.pts = pts
        vf.time_base = frame.time_base
        try:
            for packet in out.stream.encode(vf):
                out.container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise SinkError(
                f"video sink {self.name!r}: cannot write {out.final}: {exc}", sink=self.name
            ) from exc
        out.last_pts = pts
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
        except (OSError, av.FFmpegError, ValueError) as exc:
            _discard(out)
            raise SinkError(
                f"video sink {self.name!r}: cannot finish {out.final}: {exc}", sink=self.name
            ) from exc
        return out.final

    def close(self) -> None:
        """Finish every source's file; every one is tried, the first failure is raised."""
        first: SinkError | None = None
        for source in list(self._outs):
            try:
                self.close_source(source)
            except SinkError as exc:
                first = first or exc
        if first is not None:
            raise first

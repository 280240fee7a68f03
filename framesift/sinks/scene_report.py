"""``type: scene_report``: per video, the files editors and scene tools read — a scene list CSV
(PySceneDetect's columns), JSON, a CMX 3600 EDL, one thumbnail per scene, an HTML report and, with
``split``, one video file per scene.

It collects the ``scene_change`` analyzer's events (run it with ``report: true``): the boundaries,
the ``scene_signal`` chunks (cut signal, scene pictures and labels, the source's span) and the
sources' ``up`` status (input, size, nominal rate). A source's files are written when its final
signal arrives, so results appear as each video ends; what it holds per source is one compressed
picture per scene and a bounded trace of the signal.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from framesift.config.sinks import SinkSpec
from framesift.errors import SinkError
from framesift.events import Event, SceneChange, SceneSignal, SourceStatus
from framesift.scenes.model import SceneList, scenes_from_events
from framesift.scenes.outputs import write_all
from framesift.sinks.base import Sink

log = logging.getLogger("framesift.sinks.scene_report")

MAX_TRACE = 8192  # signal rows kept per video; longer traces are halved (the peak of each pair kept)


class SceneReportConfig(SinkSpec):
    """Scene lists, EDL, thumbnails and an HTML report per video, written when the video ends."""

    type: Literal["scene_report"] = "scene_report"
    implementation: ClassVar[str] = "SceneReportSink"

    dir: str = Field(description="output folder (created)")
    html: bool = Field(True, description="write the HTML report")
    thumbnails: bool = Field(True, description="write one JPEG per scene")
    split: bool = Field(False, description="also write one re-encoded video file per scene")
    split_copy: bool = Field(
        False, description="with split: copy the packets instead (no re-encoding; cut at keyframes)"
    )
    queue_size: int = Field(256, ge=1, le=100_000)


@dataclass
class _Video:
    source: str
    input: str | None = None
    width: int = 0
    height: int = 0
    fps: Fraction = Fraction(25)
    events: list[SceneChange] = field(default_factory=list)
    trace: list[tuple[int, float, float, float]] = field(default_factory=list)
    merge: int = 1  # rows per trace point
    pending: list[tuple[int, float, float, float]] = field(default_factory=list)
    thumbs: dict[int, bytes] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add_rows(self, rows: tuple[tuple[int, float, float, float], ...]) -> None:
        for row in rows:
            self.pending.append(row)
            if len(self.pending) >= self.merge:
                p = self.pending
                self.trace.append((p[0][0], p[0][1], max(r[2] for r in p), min(r[3] for r in p)))
                self.pending = []
            if len(self.trace) > MAX_TRACE:
                t = self.trace
                self.trace = [
                    (t[i][0], t[i][1], max(t[i][2], t[i + 1][2]), min(t[i][3], t[i + 1][3]))
                    if i + 1 < len(t)
                    else t[i]
                    for i in range(0, len(t), 2)
                ]
                self.merge *= 2


@dataclass
class Written:
    """What was written for one video."""

    source: str
    video: str
    scenes: int
    frames: int
    paths: dict[str, Path]


class SceneReportSink(Sink):
    """See the module docstring. ``keep=True`` also keeps each :class:`SceneList` in
    :attr:`results` (programmatic use); ``write=False`` writes no files."""

    name = "scene_report"
    accepts = (SourceStatus, SceneChange, SceneSignal)
    drain_s = None  # local files only: a film's split may take minutes after the last frame

    def __init__(
        self, cfg: SceneReportConfig, *, keep: bool = False, write: bool = True, mode: str = "pixel"
    ) -> None:
        self.cfg = cfg
        self.keep, self.write_files, self.mode = keep, write, mode
        self.out = Path(cfg.dir)
        self.results: list[SceneList] = []
        self.written: list[Written] = []
        self._videos: dict[str, _Video] = {}

    @classmethod
    def from_config(cls, cfg: SceneReportConfig) -> SceneReportSink:
        return cls(cfg)

    def open(self) -> None:
        if self.write_files:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SinkError(
                    f"{self.out}: cannot create the output folder ({exc.strerror or exc})"
                ) from None

    def _video(self, source: str) -> _Video:
        v = self._videos.get(source)
        if v is None:
            v = self._videos[source] = _Video(source)
        return v

    def write(self, event: Event) -> None:
        if isinstance(event, SourceStatus):
            if event.state == "up":
                v = self._video(event.source)
                v.input, v.width, v.height = event.input, event.width or 0, event.height or 0
                if event.fps:
                    v.fps = Fraction(event.fps).limit_denominator(1001)
        elif isinstance(event, SceneChange):
            self._video(event.source).events.append(event)
        elif isinstance(event, SceneSignal):
            v = self._video(event.source)
            v.add_rows(event.rows)
            v.labels.update(event.labels)
            if self.cfg.thumbnails or self.cfg.html:
                for index, picture in event.pictures.items():
                    v.thumbs[index] = _jpeg(picture)
            if event.final:
                self._videos.pop(event.source, None)
                self._finish(v, event)

    def _finish(self, v: _Video, final: SceneSignal) -> None:
        start, end = final.start_time or 0.0, final.end_time or final.start_time or 0.0
        events = sorted(v.events, key=lambda e: e.frame_index)
        sl = SceneList(
            path=Path(v.input or v.source),
            fps=v.fps,
            frames=final.frames,
            width=v.width,
            height=v.height,
            scenes=scenes_from_events(events, final.frames, start_time=start, end_time=end, labels=v.labels),
            events=events,
            mode=self.mode,
            signal=v.trace + ([v.pending[0]] if v.pending else []),
            elapsed_s=max(0.0, final.wallclock - v.started),
            thumbs=v.thumbs,
            source=v.source,
        )
        paths: dict[str, Path] = {}
        if self.write_files:
            if self.cfg.split and not self.cfg.split_copy:
                log.info(
                    "%s: writing %d scene files (re-encoding to H.264 takes longer than finding the scenes)",
                    sl.path.name,
                    len(sl.scenes),
                )
            paths = write_all(
                sl,
                self.out,
                html_report=self.cfg.html,
                thumbnails=self.cfg.thumbnails,
                split=self.cfg.split,
                copy=self.cfg.split_copy,
            )
        self.written.append(Written(v.source, str(sl.path), len(sl.scenes), sl.frames, paths))
        if self.keep:
            self.results.append(sl)
        else:
            sl.thumbs = {}

    def close(self) -> None:
        if self._videos:  # sources that never finished (no frame decoded): nothing to report
            log.debug("scene_report: no scenes for %s", ", ".join(sorted(self._videos)))
        self._videos.clear()


def _jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    return buf.tobytes() if ok else b""


def report_sink(out: str, opts: dict[str, bool], mode: str) -> SceneReportSink:
    """The sink ``framesift scenes`` writes through, from its options (``no_html``, ``no_thumbnails``,
    ``split``, ``copy``)."""
    cfg = SceneReportConfig(
        dir=out,
        html=not opts["no_html"],
        thumbnails=not opts["no_thumbnails"],
        split=opts["split"],
        split_copy=opts.get("copy", False),
    )
    return SceneReportSink(cfg, mode=mode)

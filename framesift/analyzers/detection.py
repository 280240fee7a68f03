"""``type: detect``: open-vocabulary detection (and SAM masks) on every frame, batched across sources,
one ``detections`` event per frame carrying the frame — for auto-labelling and per-frame outputs.
The ``tracker`` analyzer builds on it."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from framesift.analyzers.base import Analyzer
from framesift.config import plugins
from framesift.config.base import AnalyzerSpec, DetectorSpec, SegmenterSpec
from framesift.engines.base import Detector, Embedder, Segmenter
from framesift.errors import ConfigError
from framesift.events import Event, FrameDetections
from framesift.frame import Frame

log = logging.getLogger("framesift.analyzers.detection")

if TYPE_CHECKING:  # the checker sees the bases; at run time each is the union of its plugins
    DetectorConfig = DetectorSpec
    SegmenterConfig = SegmenterSpec
else:
    DetectorConfig = plugins.union("detector", default="yolo_world")
    SegmenterConfig = plugins.union("segmenter", default="sam")


class DetectConfig(AnalyzerSpec):
    """Analyzer ``detect``: detector → (optional SAM) → one ``detections`` event per frame."""

    type: Literal["detect"] = "detect"
    implementation: ClassVar[str] = "DetectionAnalyzer"

    detector: DetectorConfig
    segment: SegmenterConfig | None = None

    def uses_embedder(self) -> bool:
        return False  # the detector has its own CLIP text encoder

    def runs_detector(self) -> bool:
        return True


#: The engines kept for the next pipeline inside :func:`reused_engines` (one set: bounded); None outside.
_kept: dict[str, tuple[Detector, Segmenter | None]] | None = None


@contextlib.contextmanager
def reused_engines() -> Iterator[None]:
    """Pipelines built one after another inside this block (``framesift detect`` over several files)
    get the detector and segmenter built first for the same settings instead of building their own
    (1–3 s each). Sequential pipelines only: the engines have no per-pipeline state, but one engine
    is not meant to serve two pipelines running at once."""
    global _kept
    outer = _kept
    _kept = {} if outer is None else outer
    try:
        yield
    finally:
        _kept = outer


def build_engines(detector: DetectorSpec, segment: SegmenterSpec | None) -> tuple[Detector, Segmenter | None]:
    """The detector (and segmenter) a ``detect`` or ``tracker`` config asks for."""
    from framesift.engines.detectors import build_detector
    from framesift.engines.segmenters import build_segmenter

    kept = _kept
    if kept is None:  # outside reused_engines(): every pipeline builds its own
        return build_detector(detector), None if segment is None else build_segmenter(segment)
    key = json.dumps(
        [detector.model_dump(mode="json"), None if segment is None else segment.model_dump(mode="json")],
        sort_keys=True,
        default=str,
    )
    if key not in kept:
        kept.clear()  # the settings changed: the old engines go
        kept[key] = build_detector(detector), None if segment is None else build_segmenter(segment)
    return kept[key]


class DetectionAnalyzer(Analyzer):
    """Detects (and segments) each batch of frames, of any sources, at once in :meth:`on_batch`; each
    frame then gets its precomputed detections (``sv.Detections``, ``class_name`` in ``data``)."""

    name = "detect"

    def __init__(self, detector: Detector | None = None, *, segmenter: Segmenter | None = None) -> None:
        self.detector = detector
        self.segmenter = segmenter
        self.batched = detector is not None
        # (source, frame index) -> (frame, detections) of the current batch only
        self._batch_dets: dict[tuple[str, int], tuple[Frame, Any]] = {}

    @classmethod
    def from_config(cls, cfg: DetectConfig, embedder: Embedder | None = None) -> DetectionAnalyzer:
        detector, segmenter = build_engines(cfg.detector, cfg.segment)
        return cls(detector, segmenter=segmenter)

    def on_batch(self, frames: list[Frame]) -> None:
        """Detect (and segment) a batch of frames of any sources; replaces the previous batch's results.

        One detector call per frame size (a mixed-size batch would be letterboxed to a square instead
        of each size's own rectangle, changing the results); the detector splits it into ``max_batch``
        chunks.
        """
        self._batch_dets = {}
        if self.detector is None:
            return
        by_size: dict[tuple[int, ...], list[Frame]] = {}
        for f in frames:
            by_size.setdefault(tuple(f.image.shape[:2]), []).append(f)
        out: dict[tuple[str, int], tuple[Frame, Any]] = {}
        for group in by_size.values():
            for f, det in zip(group, self.detector.detect(group), strict=True):
                out[(f.source_id, f.index)] = (f, self._segment(f, det))
        self._batch_dets = out

    def detections(self, frame: Frame) -> Any:
        """``frame``'s detections from :meth:`on_batch`, else detected alone now."""
        hit = self._batch_dets.pop((frame.source_id, frame.index), None)
        if hit is not None and hit[0] is frame:
            return hit[1]
        if self.detector is None:
            raise ConfigError(f"analyzer {self.name} needs a detector (or call update() with detections)")
        return self._segment(frame, self.detector.detect([frame])[0])

    def _segment(self, frame: Frame, det: Any) -> Any:
        if self.segmenter is not None and len(det):
            det.mask = self.segmenter.segment(frame, det.xyxy)
        return det

    def on_frame(self, frame: Frame, embedding: np.ndarray | None = None) -> Iterable[Event]:
        det = self.detections(frame)
        return [
            FrameDetections(
                source=frame.source_id,
                frame_index=frame.index,
                pts=frame.pts,
                time_base=frame.time_base,
                time=frame.seconds,
                detections=det,
                frame=frame,
            )
        ]

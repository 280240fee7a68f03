"""Scene-change detection on embedding distances, causal with a bounded delay.

Per source, for every frame ``t`` with embedding ``e_t`` (L2-normalised):

* **cuts** — ``d1[t] = 1 - e_t·e_{t-1}``. Frame ``c`` is a cut when ``d1[c]`` stands out from its
  rolling neighbourhood (``> median + k·1.4826·MAD``, ``> ratio·median`` and ``> min_score``), is a
  local peak, and the ``flash_frames + 1`` frames after it all stay far from frame ``c-1`` (a flash
  is an excursion that returns). Decided when frame ``c + flash_frames + 1`` arrives.
* **gradual transitions** — ``dk[t] = 1 - e_t·e_{t-k}`` with its own rolling statistics. A run of
  elevated ``dk`` (shorter than ``max_transition``) is a dissolve or a fade when the frames before it
  and after it differ by ``gradual_min_score``; the interval is where frames leave the "before" look
  and reach the "after" look. It is a ``fade`` when black frames lie inside; a fade into black that
  stays black is held until the picture comes back.
* Black frames never make cuts, global lighting changes barely move the ``pixel`` embedding, and a
  boundary closer than ``min_scene_len`` to the previous one is ignored.
Delay: a cut is emitted ``flash_frames + 1`` frames after it; a gradual transition at most
``max_transition + gradual_k + 3`` frames after its first frame (:attr:`max_delay_frames`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from framesift.analyzers.base import Analyzer
from framesift.analyzers.scene_gradual import GradualDetector
from framesift.analyzers.scene_report import SceneReporter
from framesift.analyzers.scene_signal import (
    GAP,
    Entry,
    SourceState,
    dist,
    fading,
    is_dark,
    label_of,
    robust_threshold,
    signal_batch,
    thumb,
)
from framesift.analyzers.scene_transnet import TransnetOptions, TransnetSceneAnalyzer
from framesift.config.base import AnalyzerSpec
from framesift.engines.base import Embedder
from framesift.errors import ConfigError
from framesift.events import Event, SceneChange, SceneSignal
from framesift.frame import Frame

log = logging.getLogger(__name__)

__all__ = ["SceneChangeAnalyzer", "SceneChangeConfig", "is_dark", "label_of", "robust_threshold"]


class SceneChangeConfig(AnalyzerSpec):
    """Scene-change detection on consecutive-frame embedding distances.

    ``mode``: ``pixel`` uses the built-in weight-free embedder on every frame; ``clip`` the
    pipeline's embedder (CLIP) on every frame; ``hybrid`` ``pixel`` on every frame and CLIP on
    candidate cuts, to confirm each one and move it to the exact frame. Cosine distances (1 - cos).

    Causal in live and file use alike. ``transnet``/``ensemble``: TransNetV2 (+ pixel), see scene_transnet.py.
    """

    type: Literal["scene_change"] = "scene_change"
    implementation: ClassVar[str] = "SceneChangeAnalyzer"

    mode: Literal["pixel", "clip", "hybrid", "transnet", "ensemble"] = "pixel"
    transnet: TransnetOptions = Field(default_factory=TransnetOptions, description="transnet/ensemble")
    # Hard cuts: score = distance to the previous frame, compared with its rolling neighbourhood.
    window: int = Field(48, ge=8, le=10_000, description="frames in the rolling median/MAD window")
    threshold_k: float = Field(8.0, gt=0, description="cut if score > median + k * 1.4826 * MAD")
    threshold_ratio: float = Field(4.0, ge=1.0, description="... and score > ratio * median")
    min_score: float | None = Field(
        None, ge=0, le=2, description="absolute floor for a cut score; None: 0.15 (pixel), 0.08 (clip)"
    )
    min_changed_area: float = Field(
        0.15, ge=0, le=1, description="pixel/hybrid: share of the picture that must change for a cut"
    )
    min_scene_len: int = Field(8, ge=1, description="frames; a boundary closer to the last is ignored")
    flash_frames: int = Field(
        2, ge=0, le=10, description="excursions this long that return are flashes, not cuts"
    )
    # Gradual transitions (dissolves, fades): distance to the frame k back.
    gradual: bool = True
    gradual_k: int = Field(8, ge=2, le=120, description="frames back for the gradual signal")
    gradual_threshold_k: float = Field(6.0, gt=0)
    gradual_min_score: float | None = Field(
        None, ge=0, le=2, description="before/after distance for a gradual transition; None: by mode"
    )
    max_transition: int = Field(60, ge=4, le=2000, description="longest dissolve/fade, frames")
    dark_level: float = Field(24.0, ge=0, le=255, description="black: no 1/32-width cell brighter")
    # Hybrid refinement.
    refine_radius: int = Field(2, ge=0, le=10, description="hybrid: frames either side searched")
    refine_min_score: float = Field(0.05, ge=0, le=2, description="hybrid: CLIP distance confirming a cut")
    # Labels and thumbnails.
    labels: list[str] = Field(default_factory=list, description="zero-shot prompts for each scene")
    thumbnails: bool = False
    thumbnail_dir: str | None = None
    thumbnail_width: int = Field(160, ge=16, le=1920)
    report: bool = Field(
        False,
        description="also emit scene_signal events (the cut signal, a picture and a label per scene, "
        "each source's frame count and time span) for scene reports; `framesift scenes` sets it",
    )

    @model_validator(mode="after")
    def _check(self) -> SceneChangeConfig:
        if self.thumbnails and not self.thumbnail_dir:
            raise ValueError("thumbnails: true needs thumbnail_dir (a folder for the JPEG files)")
        return self

    def uses_embedder(self) -> bool:
        return self.mode in ("clip", "hybrid") or bool(self.labels)

    def cut_floor(self) -> float:
        if self.min_score is not None:
            return self.min_score
        return 0.08 if self.mode == "clip" else 0.15

    def gradual_floor(self) -> float:
        if self.gradual_min_score is not None:
            return self.gradual_min_score
        return 0.15 if self.mode == "clip" else 0.3


class SceneChangeAnalyzer(GradualDetector, Analyzer):
    """Emits :class:`~framesift.events.SceneChange` per source (see the module docstring).

    ``needs_embedding`` is True in ``clip`` mode (the pipeline's embedder runs on every frame); in
    ``pixel`` and ``hybrid`` modes the analyzer computes the cheap ``pixel`` signal itself and the
    pipeline's embedder is used only for candidate frames (hybrid) and labels.
    """

    name = "scene_change"
    cfg: SceneChangeConfig
    needs_embedding = True
    produces = (SceneChange, SceneSignal)

    def __init__(
        self,
        cfg: SceneChangeConfig | None = None,
        embedder: Embedder | None = None,
        *,
        primary: Embedder | None = None,
    ) -> None:
        self.cfg = cfg or SceneChangeConfig()
        c = self.cfg
        self.embedder = embedder  # replaced by rebind() when the pipeline rebuilds its engine
        if c.mode == "clip":
            if embedder is None:
                raise ConfigError("scene_change mode 'clip' needs an embedder (engine: block)")
            self.needs_embedding = True
        else:
            if primary is None:
                from framesift.engines.models.pixel import PixelEmbedder

                primary = PixelEmbedder()
            if c.mode == "hybrid" and embedder is None:
                raise ConfigError(
                    "scene_change mode 'hybrid' needs an embedder (engine: block) for refinement"
                )
            self.needs_embedding = False
            self.batched = True  # the every-frame signal is computed a batch at a time (on_batch)
        self._pixel = primary
        # the current batch only: frame, its pixel embedding and (black?, mean luma) when known
        self._batch: dict[tuple[str, int], tuple[Frame, np.ndarray, tuple[bool, float] | None]] = {}
        self._area = getattr(self.primary, "changed_area", None)  # pixel: share of the picture changed
        self.lookahead = c.flash_frames + 1
        self.k = c.gradual_k
        self.cut_floor = c.cut_floor()
        self.gradual_floor = c.gradual_floor()
        self.max_delay_frames = max(self.lookahead, c.max_transition + self.k + GAP + 1)
        self.delay_frames = self.max_delay_frames
        history = c.max_transition + 3 * self.k + GAP + self.lookahead + 8
        keep = c.mode == "hybrid" or (bool(c.labels) and c.mode == "pixel")  # frames for CLIP calls
        self._frames_kept = self.lookahead + c.refine_radius + 3 if keep else 0
        self._history = history
        self._states: dict[str, SourceState] = {}
        self._reporters: dict[str, SceneReporter] = {}  # per source, with ``report``
        self.text_emb: np.ndarray | None = None
        self._label_source: str | None = None  # "embedder" or "primary"
        if c.labels:
            if embedder is not None and embedder.supports_text:
                self._label_source = "embedder"
            elif primary is not None and primary.supports_text:
                self._label_source = "primary"
            else:
                raise ConfigError(
                    "scene_change labels need an embedder with a text tower (a CLIP model with weights); "
                    "the pixel embedder has none: remove 'labels' or configure a CLIP engine"
                )
            assert self.label_embedder is not None
            self.text_emb = np.asarray(self.label_embedder.embed_texts(list(c.labels)), np.float32)
        if c.thumbnails and c.thumbnail_dir:
            Path(c.thumbnail_dir).mkdir(parents=True, exist_ok=True)

    def rebind(self, old: Embedder, new: Embedder) -> None:
        if self.embedder is old:
            self.embedder = new

    @property
    def primary(self) -> Embedder:
        """The embedder behind the every-frame signal."""
        if self.cfg.mode == "clip":
            assert self.embedder is not None
            return self.embedder
        assert self._pixel is not None
        return self._pixel

    @property
    def refiner(self) -> Embedder | None:
        """Hybrid: the embedder run on candidate frames only."""
        return self.embedder if self.cfg.mode == "hybrid" else None

    @property
    def label_embedder(self) -> Embedder | None:
        if self._label_source == "embedder":
            return self.embedder
        return self._pixel if self._label_source == "primary" else None

    @classmethod
    def from_config(cls, cfg: SceneChangeConfig, embedder: Embedder | None) -> Analyzer:
        if cfg.mode in ("transnet", "ensemble"):  # TransNetV2 windows: framesift/analyzers/scene_transnet.py
            pixel = cls(cfg.model_copy(update={"mode": "pixel", "report": False}))
            return TransnetSceneAnalyzer(cfg, pixel=pixel if cfg.mode == "ensemble" else None)
        return cls(cfg, embedder)

    # -- per-frame -------------------------------------------------------------------------------

    def _state(self, source: str) -> SourceState:
        st = self._states.get(source)
        if st is None:
            st = self._states[source] = SourceState(source, self.cfg.window, self._history, self._frames_kept)
        return st

    def on_frame(self, frame: Frame, embedding: np.ndarray | None) -> list[Event]:
        if self.cfg.mode == "clip":
            if embedding is None:  # the engine dropped this frame: nothing to compare
                return []
            emb = np.asarray(embedding, np.float32).reshape(-1)
        else:
            hit = self._batch.pop((frame.source_id, frame.index), None)
            if hit is not None and hit[0] is frame:
                return self.push(frame, hit[1], dark=hit[2])
            emb = self.primary.embed_images([frame])[0]
        return self.push(frame, emb)

    def on_batch(self, frames: list[Frame]) -> None:
        """The pixel signal of a whole batch (frames of any sources) in one vectorised call."""
        embs, darks = signal_batch(self.primary, frames, self.cfg.dark_level)
        self._batch = {(f.source_id, f.index): (f, e, d) for f, e, d in zip(frames, embs, darks, strict=True)}

    def push(self, frame: Frame, emb: np.ndarray, *, dark: tuple[bool, float] | None = None) -> list[Event]:
        """Feed one frame with its primary embedding (and its darkness when already known)."""
        st = self._state(frame.source_id)
        dark_, luma = dark if dark is not None else is_dark(frame.image, self.cfg.dark_level)
        small = None
        if self.cfg.thumbnails and isinstance(frame.image, np.ndarray):
            small = thumb(frame.image, self.cfg.thumbnail_width)
        entry = Entry(frame.index, frame.pts, frame.time_base, emb, dark_, luma, thumb=small)
        reporter = self._reporters.get(frame.source_id) if self.cfg.report else None
        if self.cfg.report and reporter is None:
            reporter = self._reporters[frame.source_id] = self._reporter(frame.source_id)
        if reporter is not None:
            reporter.frame(frame)
        prev = st.ring[-1] if st.ring else None
        if prev is not None:
            entry.d1 = dist(prev.emb, emb)
        back = st.ring[-self.k] if len(st.ring) >= self.k else None
        if back is not None:
            entry.dk = dist(back.emb, emb)
        st.ring.append(entry)
        if self._frames_kept:
            st.frames.append(frame)
        if not dark_:
            st.seen_light = True
        events: list[Event] = []
        # Cuts: decide the frame `lookahead` back.
        pos = len(st.ring) - 1 - self.lookahead
        if pos >= 1:
            events += self._decide_cut(st, pos, len(st.ring) - 1)
        if self.cfg.gradual and back is not None:
            events += self._gradual_step(st, entry, final=False)
            if (dip := st.dip_step(self.cfg.max_transition)) is not None:
                events += self._dip_close(st, *dip)
        if reporter is not None:
            reporter.report(events, final=False)
        return events

    def on_end(self, source_id: str) -> list[Event]:
        st = self._states.pop(source_id, None)
        reporter = self._reporters.get(source_id)
        if st is None or not st.ring:
            self._reporters.pop(source_id, None)
            return []
        events: list[Event] = []
        first_undecided = max(1, len(st.ring) - self.lookahead)
        for pos in range(first_undecided, len(st.ring)):
            if st.ring[pos].index > st.decided:
                events += self._decide_cut(st, pos, len(st.ring) - 1)
        if self.cfg.gradual and st.run is not None:
            events += self._gradual_close(st, st.run, len(st.ring) - 1)
        if reporter is not None:
            reporter.report(events, final=True)
            del self._reporters[source_id]
        return events

    # -- report ------------------------------------------------------------------------------------

    def _reporter(self, source: str) -> SceneReporter:
        embedder = self.label_embedder
        return SceneReporter(
            source,
            max_delay_frames=self.max_delay_frames,
            embed=None if embedder is None else embedder.embed_images,
            text_emb=self.text_emb,
            labels=list(self.cfg.labels),
        )

    # -- cuts --------------------------------------------------------------------------------------

    def _decide_cut(self, st: SourceState, pos: int, last_pos: int) -> list[Event]:
        c = self.cfg
        cur, before = st.ring[pos], st.ring[pos - 1]
        st.decided = cur.index
        thr = robust_threshold(st.d1_hist, c.threshold_k, c.threshold_ratio, self.cut_floor)
        ok = cur.d1 > thr and pos < last_pos  # the last frame of a stream cannot be told from a flash
        reporter = self._reporters.get(st.source)
        if reporter is not None:
            reporter.row(cur.index, float(cur.pts * cur.time_base), cur.d1, thr)
        if ok and pos + 1 <= last_pos and st.ring[pos + 1].d1 > cur.d1:
            ok = False  # not the peak: the next frame changes more
        if ok and (cur.dark or before.dark or fading(before.luma, cur.luma, c.dark_level)):
            ok = False  # black frames and the dim end of a fade belong to the gradual detector
        if ok and self._area is not None and self._area(before.emb, cur.emb) < c.min_changed_area:
            ok = False  # only a small region changed: a counter, a logo, a close passer-by
        if ok:
            # The return from a flash: this frame looks like one shortly before the excursion.
            for j in range(2, self.lookahead + 1):
                if pos - j >= 0 and dist(st.ring[pos - j].emb, cur.emb) < max(
                    0.5 * cur.d1, 0.5 * self.cut_floor
                ):
                    ok = False
                    break
        if ok:
            post = [st.ring[j] for j in range(pos + 1, min(last_pos, pos + self.lookahead) + 1)]
            if pos + 1 > last_pos:
                post = []
            for p in post:
                if dist(before.emb, p.emb) < max(0.5 * cur.d1, 0.5 * self.cut_floor):
                    ok = False  # returns to the old picture: a flash
                    break
        if ok and st.last_boundary is not None and cur.index - st.last_boundary < c.min_scene_len:
            ok = False
        if not ok:
            st.d1_hist.append(cur.d1)
            return []
        index, score = cur.index, cur.d1
        if self.refiner is not None:
            refined = self._refine(st, cur.index)
            if refined is None:
                st.d1_hist.append(cur.d1)
                st.cuts.append(cur.index)  # explained (a non-change to the refiner): no gradual event
                return []
            index, _clip_score = refined
        st.cuts.append(index)
        return [self._emit(st, "cut", index, score, index, index, last_pos)]

    def _refine(self, st: SourceState, index: int) -> tuple[int, float] | None:
        """Hybrid: the refiner's distances around ``index``; None if it sees no change."""
        assert self.refiner is not None
        r = self.cfg.refine_radius
        frames = [f for f in st.frames if index - r - 1 <= f.index <= index + r]
        if len(frames) < 2:
            return index, 0.0
        embs = np.asarray(self.refiner.embed_images(frames), np.float32)
        d = 1.0 - np.sum(embs[1:] * embs[:-1], axis=1)
        best = int(np.argmax(d))
        if float(d[best]) < self.cfg.refine_min_score:
            return None
        return frames[best + 1].index, float(d[best])

    # -- events ------------------------------------------------------------------------------------

    def _emit(
        self, st: SourceState, kind: str, index: int, score: float, start: int, end: int, now_pos: int
    ) -> SceneChange:
        e = st.get(index) or st.ring[-1]
        s, t = st.get(start) or e, st.get(end) or e
        st.last_boundary, st.last_boundary_end = index, end
        st.scene_id += 1
        label = self._label(st, index, now_pos)
        c = self.cfg
        thumbs = (
            st.write_thumbs(c.thumbnail_dir, start, end, index) if c.thumbnails and c.thumbnail_dir else ()
        )
        return SceneChange(
            source=st.source,
            frame_index=index,
            pts=e.pts,
            time_base=e.time_base,
            time=float(e.pts * e.time_base),
            score=round(float(score), 6),
            kind=kind,
            scene_id=st.scene_id,
            transition_start=start,
            transition_end=end,
            transition_start_time=float(s.pts * s.time_base),
            transition_end_time=float(t.pts * t.time_base),
            label=label,
            thumbnails=thumbs,
        )

    # -- labels and thumbnails ---------------------------------------------------------------------

    def _label(self, st: SourceState, index: int, now_pos: int) -> str | None:
        """Label of the new scene from the frames seen since its first frame (argmax similarity)."""
        if self.text_emb is None or self.label_embedder is None:
            return None
        pos = st.pos(index)
        if self.cfg.mode == "clip" and self.label_embedder is self.embedder:
            embs = np.stack([st.ring[j].emb for j in range(pos, now_pos + 1)])
        else:
            frames = [f for f in st.frames if f.index >= index] if st.frames else []
            if not frames:
                return None
            embs = np.asarray(self.label_embedder.embed_images(frames), np.float32)
        return label_of(embs, self.text_emb, list(self.cfg.labels))

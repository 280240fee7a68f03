"""SceneChangeAnalyzer on generated frames (in memory, causal/live): cuts exact to the frame,
gradual transitions as intervals containing the truth, no cut on lighting, motion or flashes,
bounded delay, hybrid refinement and labels with embedders whose vectors the test controls."""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framesift.analyzers.scene_change import SceneChangeAnalyzer, SceneChangeConfig
from framesift.engines.base import Embedder, ImageLike
from framesift.errors import ConfigError
from framesift.events import SCHEMA, SceneChange
from framesift.frame import Frame
from framesift.samples_scenes import (
    PanShot,
    StaticShot,
    Timeline,
    cuts_timeline,
    dissolve_timeline,
    fade_timeline,
    hard_negatives_timeline,
    mixed_timeline,
    pan_timeline,
)

TB = Fraction(1, 25)


def feed(
    an: SceneChangeAnalyzer, frames: Sequence[np.ndarray], source: str = "cam"
) -> list[tuple[int, SceneChange]]:
    """Push frames in order; returns (index of the frame whose arrival emitted it, event)."""
    out: list[tuple[int, SceneChange]] = []
    for i, img in enumerate(frames):
        f = Frame(source, i, i, TB, time.time(), img)
        emb = an.primary.embed_images([f])[0] if an.needs_embedding else None
        out += [(i, e) for e in an.on_frame(f, emb) if isinstance(e, SceneChange)]
    out += [(len(frames), e) for e in an.on_end(source) if isinstance(e, SceneChange)]
    return out


def run(tl: Timeline, cfg: SceneChangeConfig | None = None, **kw: object) -> list[tuple[int, SceneChange]]:
    return feed(SceneChangeAnalyzer(cfg or SceneChangeConfig(), **kw), list(tl.render()))  # type: ignore[arg-type]


def test_hard_cuts_exact_to_the_frame_and_delay_bounded() -> None:
    tl = cuts_timeline()
    an = SceneChangeAnalyzer(SceneChangeConfig())
    got = feed(an, list(tl.render()))
    truth = [t.start for t in tl.transitions]
    assert [e.frame_index for _, e in got] == truth
    assert all(e.kind == "cut" for _, e in got)
    # scene_id: the 1-based number of the scene the boundary opens, as in PySceneDetect's scene list
    assert [e.scene_id for _, e in got] == list(range(2, len(truth) + 2))
    for at, e in got:  # cuts leave flash_frames + 1 frames after the cut
        assert 0 < at - e.frame_index <= an.lookahead <= an.max_delay_frames
        assert e.pts == e.frame_index and e.time_base == TB and e.time == pytest.approx(e.frame_index / 25)
        assert e.transition_start == e.transition_end == e.frame_index


@pytest.mark.parametrize("make", [dissolve_timeline, fade_timeline], ids=["dissolve", "fade"])
def test_gradual_intervals_contain_the_truth(make) -> None:  # type: ignore[no-untyped-def]
    tl = make()
    an = SceneChangeAnalyzer(SceneChangeConfig())
    got = feed(an, list(tl.render()))
    assert len(got) == len(tl.transitions), [(e.kind, e.transition_start, e.transition_end) for _, e in got]
    for (at, e), t in zip(got, tl.transitions, strict=True):
        assert e.kind == t.kind
        assert e.transition_start is not None and e.transition_end is not None
        assert e.transition_start <= t.start and e.transition_end >= t.end, (e, t)
        assert e.transition_start <= e.frame_index <= e.transition_end
        assert e.transition_end - e.transition_start <= 3 * (t.end - t.start + 1) + 40  # not the whole clip
        assert at - e.transition_start <= an.max_delay_frames  # the documented live bound
        assert e.transition_start_time == pytest.approx(e.transition_start / 25)


@pytest.mark.parametrize("make", [hard_negatives_timeline, pan_timeline], ids=["people-flash-light", "pan"])
def test_no_cut_on_lighting_motion_or_flashes(make) -> None:  # type: ignore[no-untyped-def]
    assert run(make()) == []


def test_mixed_clip_every_transition_found_once() -> None:
    tl = mixed_timeline()
    got = [e for _, e in run(tl)]
    assert len(got) == len(tl.transitions)
    for e, t in zip(got, tl.transitions, strict=True):
        assert e.kind == t.kind
        if t.kind == "cut":
            assert e.frame_index == t.start
        else:
            assert e.transition_start <= t.start and e.transition_end >= t.end  # type: ignore[operator]


def test_min_scene_len_suppresses_a_close_second_cut() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 30).add(StaticShot(2), 4).add(StaticShot(3), 30)
    got = [e.frame_index for _, e in run(tl, SceneChangeConfig(min_scene_len=8))]
    assert got == [30]
    got = [e.frame_index for _, e in run(tl, SceneChangeConfig(min_scene_len=2))]
    assert got == [30, 34]


def test_a_cut_in_the_last_frames_is_flushed_on_end() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 30).add(StaticShot(2), 2)
    assert [e.frame_index for _, e in run(tl)] == [30]


def test_sources_are_independent() -> None:
    a = list(cuts_timeline().render())
    b = list(hard_negatives_timeline().render())
    an = SceneChangeAnalyzer(SceneChangeConfig())
    events: dict[str, list[int]] = {"a": [], "b": []}
    for i in range(max(len(a), len(b))):
        for src, frames in (("a", a), ("b", b)):
            if i < len(frames):
                for e in an.on_frame(Frame(src, i, i, TB, 0.0, frames[i]), None):
                    events[src].append(e.frame_index)  # type: ignore[attr-defined]
    for src in ("a", "b"):
        events[src] += [e.frame_index for e in an.on_end(src)]  # type: ignore[attr-defined]
    assert events["a"] == list(cuts_timeline().transitions[i].start for i in range(4))
    assert events["b"] == []


# -- embedders the tests control ------------------------------------------------------------------


class TableEmbedder(Embedder):
    """Maps each Frame to one of a few fixed vectors chosen by a function of its index."""

    name = "table"

    def __init__(self, which, dim: int = 8, texts: dict[str, int] | None = None) -> None:  # type: ignore[no-untyped-def]
        self.which, self.dim = which, dim
        self.texts = texts or {}
        self.supports_text = bool(texts)
        self.calls = 0

    def _vec(self, k: int) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        v[k % self.dim] = 1.0
        return v

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        self.calls += len(images)
        out = []
        for it in images:
            assert isinstance(it, Frame), "hybrid must pass frames"
            out.append(self._vec(self.which(it.index)))
        return np.stack(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._vec(self.texts[t]) for t in texts])


def test_hybrid_moves_the_cut_to_the_refiners_frame_and_runs_only_on_candidates() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 40).add(StaticShot(2), 40)
    refiner = TableEmbedder(lambda i: 0 if i < 41 else 1)  # the "CLIP" boundary is one frame later
    got = run(tl, SceneChangeConfig(mode="hybrid"), embedder=refiner)
    assert [e.frame_index for _, e in got] == [41]
    assert refiner.calls <= 2 * SceneChangeConfig().refine_radius + 2  # one candidate, a few frames


def test_hybrid_drops_a_candidate_the_refiner_does_not_confirm() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 40).add(StaticShot(2), 40)
    assert run(tl, SceneChangeConfig(mode="hybrid"), embedder=TableEmbedder(lambda i: 0)) == []


def test_clip_mode_uses_the_pipeline_embedding() -> None:
    frames = [np.full((24, 32, 3), 128, np.uint8)] * 60  # pixels say nothing: the embedding decides
    emb = TableEmbedder(lambda i: 0 if i < 30 else 1)
    an = SceneChangeAnalyzer(SceneChangeConfig(mode="clip"), emb)
    assert an.needs_embedding
    got = []
    for i, img in enumerate(frames):
        f = Frame("s", i, i, TB, 0.0, img)
        got += an.on_frame(f, emb.embed_images([f])[0])
    got += an.on_end("s")
    assert [e.frame_index for e in got] == [30]  # type: ignore[attr-defined]


def test_labels_argmax_of_scene_mean() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 40).add(StaticShot(2), 40)
    texts = {"a football match": 0, "a studio presenter": 1, "an advertisement": 2}
    labeller = TableEmbedder(lambda i: 0 if i < 40 else 1, texts=texts)
    cfg = SceneChangeConfig(mode="hybrid", labels=list(texts))
    got = run(tl, cfg, embedder=labeller)
    assert [(e.frame_index, e.label) for _, e in got] == [(40, "a studio presenter")]


def test_labels_need_a_text_tower() -> None:
    with pytest.raises(ConfigError, match="text tower"):
        SceneChangeAnalyzer(SceneChangeConfig(labels=["a"]))
    with pytest.raises(ConfigError, match="hybrid"):
        SceneChangeAnalyzer(SceneChangeConfig(mode="hybrid"))


def test_thumbnails_of_both_sides(tmp_path: Path) -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 30).add(StaticShot(2), 30)
    cfg = SceneChangeConfig(thumbnails=True, thumbnail_dir=str(tmp_path), thumbnail_width=64)
    ((_, e),) = run(tl, cfg)
    assert len(e.thumbnails) == 2
    assert "before" in e.thumbnails[0] and "after" in e.thumbnails[1]
    for p in e.thumbnails:
        assert Path(p).stat().st_size > 100
    d = e.to_dict()
    assert d["type"] == "scene_change" and d["time_base"] == "1/25" and d["kind"] == "cut"


def test_config_is_strict() -> None:
    with pytest.raises(ValueError):
        SceneChangeConfig(bogus=1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="thumbnail_dir"):
        SceneChangeConfig(thumbnails=True)
    assert SceneChangeConfig.model_validate({"type": "scene_change", "mode": "hybrid"}).mode == "hybrid"


def test_state_is_bounded() -> None:
    an = SceneChangeAnalyzer(SceneChangeConfig())
    img = np.zeros((24, 32, 3), np.uint8)
    for i in range(600):
        an.on_frame(Frame("s", i, i, TB, 0.0, img), None)
    st = an._states["s"]
    assert len(st.ring) <= st.ring.maxlen  # type: ignore[operator]
    assert st.ring.maxlen is not None and st.ring.maxlen < 200
    assert len(st.d1_hist) <= SceneChangeConfig().window


def test_engine_rebuild_swaps_the_refiner() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 40).add(StaticShot(2), 40)
    old = TableEmbedder(lambda i: 0)
    an = SceneChangeAnalyzer(SceneChangeConfig(mode="hybrid"), old)
    new = TableEmbedder(lambda i: 0 if i < 40 else 1)
    an.embedder = new  # what Pipeline does after rebuilding a failed engine
    assert an.refiner is new
    assert [e.frame_index for _, e in feed(an, list(tl.render()))] == [40]
    assert old.calls == 0


def test_clip_mode_skips_frames_the_engine_dropped() -> None:
    emb = TableEmbedder(lambda i: 0)
    an = SceneChangeAnalyzer(SceneChangeConfig(mode="clip"), emb)
    img = np.full((24, 32, 3), 128, np.uint8)
    assert an.on_frame(Frame("s", 0, 0, TB, 0.0, img), None) == []
    assert emb.calls == 0


def test_in_a_pipeline_with_a_jsonl_sink(tmp_path: Path) -> None:
    """The real pipeline (file source → stage → this analyzer → jsonl sink)."""
    import json

    pipeline = pytest.importorskip("framesift.pipeline")
    from framesift.config import parse_config

    info = mixed_timeline().write(tmp_path / "m.mp4")
    out = tmp_path / "events.jsonl"
    cfg = parse_config(
        {
            "sources": [{"type": "file", "path": str(info.path), "id": "m"}],
            "analyzers": [{"type": "scene_change", "mode": "pixel"}],
            "sinks": [{"type": "jsonl", "path": str(out)}],
            "metrics": {"enabled": False},
            "engine": {"model": "pixel"},
        }
    )
    pipeline.Pipeline(cfg).run()
    events = [json.loads(line) for line in out.read_text().splitlines()]
    scenes = [e for e in events if e["type"] == "scene_change"]
    assert [e["kind"] for e in scenes] == [t.kind for t in info.transitions]
    for e, t in zip(scenes, info.transitions, strict=True):
        assert e["transition_start"] <= t.start and e["transition_end"] >= t.end
        assert e["source"] == "m" and e["schema"] == SCHEMA


def test_subsampled_source_indices_with_gaps() -> None:
    """``target_fps`` leaves gaps in ``Frame.index``: events keep the source's frame numbers."""
    tl = mixed_timeline()
    an = SceneChangeAnalyzer(SceneChangeConfig())
    got: list[SceneChange] = []
    for i, img in enumerate(tl.render()):
        got += [
            e for e in an.on_frame(Frame("s", 3 * i, 3 * i, TB, 0.0, img), None) if isinstance(e, SceneChange)
        ]
    got += [e for e in an.on_end("s") if isinstance(e, SceneChange)]
    assert [e.kind for e in got] == [t.kind for t in tl.transitions]
    for e, t in zip(got, tl.transitions, strict=True):
        assert e.frame_index % 3 == 0
        assert e.transition_start <= 3 * t.start and e.transition_end >= 3 * t.end  # type: ignore[operator]


def test_labels_in_pixel_mode_with_a_text_capable_pipeline_embedder() -> None:
    tl = Timeline()
    tl.add(StaticShot(1), 40).add(StaticShot(2), 40)
    texts = {"indoor": 0, "outdoor": 1}
    labeller = TableEmbedder(lambda i: 0 if i < 40 else 1, texts=texts)
    got = run(tl, SceneChangeConfig(mode="pixel", labels=list(texts)), embedder=labeller)
    assert [(e.frame_index, e.label) for _, e in got] == [(40, "outdoor")]
    assert labeller.calls < 10  # only the frames after the boundary, at emission


def _same_place_fade() -> Timeline:
    """Two views of one panorama (pixel distance ~0.26, under the mix floor of 0.3) joined by a
    fade through black, after the first view slowly dims by 1 % a frame for 20 frames."""
    tl = Timeline()
    a = PanShot(41, speed=1.5)
    tl.add(a, 30)
    for j in range(1, 21):
        tl.brightness(1.0 - 0.01 * j).add(a, 1)
    b = PanShot(41, speed=1.5)
    b.next = 100
    return tl.brightness(0.8).fade_to(b, 10, 3, 10, 40)


def test_a_fade_through_black_between_similar_shots_is_found_with_its_own_bounds() -> None:
    tl = _same_place_fade()
    (t,) = tl.transitions
    got = [e for _, e in run(tl)]
    assert [e.kind for e in got] == ["fade"], got
    (e,) = got
    assert e.transition_start is not None and e.transition_end is not None
    # the fade starts where the picture dims fast, not where the slow dimming began (frame 30)
    assert t.start - 3 <= e.transition_start <= t.start and e.transition_end >= t.end - 3, (e, t)


def test_lights_off_and_on_over_the_same_view_is_no_boundary() -> None:
    tl = Timeline()
    a = StaticShot(42)
    tl.add(a, 40).fade_to(a, 8, 10, 8, 40)
    assert run(tl) == []


def test_the_scene_signal_leaves_its_grid_for_the_pipelines_pixel_embedder() -> None:
    from framesift.analyzers.scene_signal import signal_batch
    from framesift.engines.models.pixel import GRID_KEY, PixelEmbedder

    pixel = PixelEmbedder()
    images = list(cuts_timeline().render())[:6]
    frames = [Frame("cam", i, i, TB, 0.0, img) for i, img in enumerate(images)]
    signal, _ = signal_batch(pixel, frames, 24.0)
    assert all(GRID_KEY in f.meta for f in frames)
    fresh = [Frame("cam", i, i, TB, 0.0, img) for i, img in enumerate(images)]
    np.testing.assert_array_equal(pixel.embed_images(frames), signal)  # from the grids
    np.testing.assert_array_equal(pixel.embed_images(fresh), signal)  # shrunk again: the same

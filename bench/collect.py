"""Smart frame collection on real footage: coverage and near-duplicates vs uniform sampling, and speed.

Footage (cached under $FRAMESIFT_CACHE or /tmp/framesift-cache, never committed):
* ``trailer_bbb.mp4`` — Big Buck Bunny trailer (CC-BY, Blender Foundation), from the moviepy 2.2.1
  sdist (``pip download --no-deps --no-binary :all: moviepy==2.2.1``);
* ``vtest.avi`` — OpenCV's pedestrian test clip (Debian ``opencv-doc``).

A montage of known segments is encoded (H.264, 1280x720, 24 fps): ten Big Buck Bunny shots of
1.5–8 s (fades trimmed) and long static-camera stretches of vtest (one scene, shown twice). With a
keep budget equal to the number of distinct scenes, we measure:

* coverage — fraction of distinct scenes with at least one kept frame;
* near-duplicate rate — fraction of kept frames whose 64x36 grey thumbnail correlates ≥ 0.95 with an
  earlier kept frame (an independent pixel metric, not the collector's embedder);

for ``framesift collect`` (weight-free ``pixel`` embedder, through the real pipeline) and for uniform
time sampling at the same budget. Speed: frames/s of the whole collect pipeline (decode → pixel
embed → collector → frame store + JSONL) ÷ a bare PyAV decode loop (decode + RGB conversion, threaded)
on the same montage, interleaved runs, best of each.

Run: ``python bench/collect.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

CACHE = Path(os.environ.get("FRAMESIFT_CACHE", "/tmp/framesift-cache"))
BBB_IN_SDIST = "moviepy-2.2.1/docs/_static/medias/getting_started/moviepy_10_minutes/trailer_bbb.mp4"
VTEST_PATHS = (
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "/usr/share/doc/opencv-doc/examples/data/vtest.avi.gz",
)
W, H, FPS = 1280, 720, 24
SUB_FPS = 8.0  # a station setting: every frame decoded, 8 per second embedded and judged

# (label, source, start frame, end frame) in the source's own frames; bbb is 24 fps, vtest 10 fps.
# bbb shot boundaries were read off a contact sheet of the trailer; fades to black are left out.
SEGMENTS: list[tuple[str, str, int, int]] = [
    ("sky", "bbb", 30, 80),
    ("vtest", "vtest", 0, 200),  # 20 s, static camera, pedestrians
    ("bird", "bbb", 262, 318),
    ("hole", "bbb", 360, 480),  # 5 s, dark and nearly static
    ("bunny_out", "bbb", 612, 740),
    ("squirrels", "bbb", 790, 850),
    ("vtest", "vtest", 300, 450),  # the same camera again, 15 s later in its day
    ("field", "bbb", 866, 890),
    ("tree", "bbb", 912, 984),
    ("rodents", "bbb", 1000, 1044),
    ("bunny_front", "bbb", 1062, 1110),
    ("sepia", "bbb", 1150, 1210),
]


def fetch_media() -> tuple[Path, Path]:
    CACHE.mkdir(parents=True, exist_ok=True)
    bbb = CACHE / "bbb.mp4"
    if not bbb.exists():
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "moviepy==2.2.1",
                   "-d", tmp, "-q"]  # fmt: skip
            subprocess.run(cmd, check=True, timeout=600)
            sdist = next(Path(tmp).glob("moviepy-2.2.1.tar.gz"))
            with tarfile.open(sdist) as tar:
                member = tar.extractfile(BBB_IN_SDIST)
                assert member is not None
                tmp_bbb = bbb.with_suffix(".tmp")
                tmp_bbb.write_bytes(member.read())
                tmp_bbb.replace(bbb)
    vtest = CACHE / "vtest.avi"
    if not vtest.exists():
        for p in VTEST_PATHS:
            if Path(p).exists():
                if p.endswith(".gz"):
                    with gzip.open(p) as src, open(vtest, "wb") as dst:
                        shutil.copyfileobj(src, dst)
                else:
                    shutil.copyfile(p, vtest)
                break
        else:
            sys.exit("vtest.avi not found: apt-get install opencv-doc")
    return bbb, vtest


def read_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24", width=W, height=H) for f in c.decode(video=0)]


def build_montage() -> tuple[Path, list[str]]:
    """Encode the montage (cached); returns its path and the scene label of every frame."""
    bbb, vtest = fetch_media()
    out = CACHE / "collect-montage.mp4"
    meta = CACHE / "collect-montage.json"
    if out.exists() and meta.exists():
        info = json.loads(meta.read_text())
        if info.get("segments") == [list(s) for s in SEGMENTS]:
            return out, info["labels"]
    frames = {"bbb": read_frames(bbb), "vtest": read_frames(vtest)}
    rates = {"bbb": 24.0, "vtest": 10.0}
    labels: list[str] = []
    tmp = out.with_suffix(".tmp.mp4")
    c = av.open(str(tmp), mode="w")
    stream = cast(VideoStream, c.add_stream("libx264", rate=FPS))
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "20"}
    index = 0
    for label, src, a, b in SEGMENTS:
        n = round((b - a) / rates[src] * FPS)
        for k in range(n):
            img = frames[src][min(b - 1, a + int(k * rates[src] / FPS))]
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = index, Fraction(1, FPS)
            for p in stream.encode(vf):
                c.mux(p)
            labels.append(label)
            index += 1
    for p in stream.encode(None):
        c.mux(p)
    c.close()
    tmp.replace(out)
    meta.write_text(json.dumps({"segments": [list(s) for s in SEGMENTS], "labels": labels}))
    return out, labels


def thumbs(path: Path, indices: list[int]) -> list[np.ndarray]:
    want = set(indices)
    out = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                g = cv2.resize(f.to_ndarray(format="gray"), (64, 36), interpolation=cv2.INTER_AREA)
                v = g.astype(np.float32).ravel()
                v -= v.mean()
                out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
    return [out[i] for i in indices]


def score(path: Path, labels: list[str], kept: list[int]) -> tuple[float, float, int]:
    """(coverage, near-duplicate rate, kept count) of a set of kept frame indices."""
    scenes = set(labels)
    covered = {labels[i] for i in kept}
    th = thumbs(path, sorted(kept))
    dups = 0
    for j in range(1, len(th)):
        if max(float(th[j] @ th[i]) for i in range(j)) >= 0.95:
            dups += 1
    return len(covered & scenes) / len(scenes), (dups / len(kept) if kept else 0.0), len(kept)


def sweep(path: Path, labels: list[str], budget: int) -> dict[float, tuple[float, float, int, int]]:
    """Coverage / near-dup / kept at several thresholds (and keeps wanted without a budget)."""
    from framesift.analyzers.collector import Collector, CollectorConfig
    from framesift.engines.models.pixel import PixelEmbedder
    from framesift.frame import Frame

    emb = PixelEmbedder()
    frames: list[tuple[Frame, np.ndarray]] = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for i, f in enumerate(c.decode(s)):
            img = f.to_ndarray(format="rgb24")
            fr = Frame(
                "montage", i, int(f.pts or 0), Fraction(s.time_base or Fraction(1, FPS)), 0.0, img[:2, :2]
            )
            frames.append((fr, emb.embed_images([img])[0]))
    out = {}
    for thr in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6):
        res = []
        for b in (budget, None):
            col = Collector(CollectorConfig(novelty_threshold=thr, max_per_day=b), emb)
            res.append([fr.index for fr, e in frames if list(col.on_frame(fr, e))])
        cov, dup, k = score(path, labels, res[0])
        out[thr] = (cov, dup, k, len(res[1]))
    return out


def uniform(n_frames: int, budget: int) -> list[int]:
    return [int((k + 0.5) * n_frames / budget) for k in range(budget)]


def run_collect(
    path: Path, budget: int, out: Path, novelty: float | None, target_fps: float | None = None
) -> tuple[list[int], float, int]:
    """framesift collect through the real pipeline; returns kept indices, seconds, frames seen."""
    from framesift.analyzers.collector import Collector, CollectorConfig
    from framesift.config import parse_config
    from framesift.engines.models.pixel import PixelEmbedder
    from framesift.pipeline import Pipeline
    from framesift.sinks.frame_store import FrameStoreSink
    from framesift.sinks.jsonl import JsonlSink
    from framesift.store.index import FrameStore

    shutil.rmtree(out, ignore_errors=True)
    src: dict[str, Any] = {"type": "file", "path": str(path), "id": "montage", "target_fps": target_fps}
    cfg = parse_config({"sources": [src], "metrics": {"enabled": False}})
    emb = PixelEmbedder()
    collector = Collector(CollectorConfig(novelty_threshold=novelty, max_per_day=budget), emb)
    sinks: list[Any] = [FrameStoreSink(FrameStore(out / "store")), JsonlSink(out / "events.jsonl")]
    t0 = time.perf_counter()
    Pipeline(cfg, embedder=emb, analyzers=[collector], sinks=sinks).run()
    dt = time.perf_counter() - t0
    with FrameStore(out / "store", readonly=True) as store:
        kept = sorted(r.frame_index for r in store.records())
    seen = sum(int(v) for v in collector.counts.values())
    return kept, dt, seen


def cpu_s() -> float:
    """CPU seconds used by this process so far (all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn: Any, *args: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds, result) of ``fn(*args)``."""
    c0, t0 = cpu_s(), time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, cpu_s() - c0, out


def bare_pipeline(path: Path) -> tuple[float, int]:
    """The same pipeline with no analyzer and no sink (capture + stage overhead only)."""
    from framesift.config import parse_config
    from framesift.pipeline import Pipeline

    cfg = parse_config({"sources": [{"type": "file", "path": str(path), "id": "montage"}],
                        "metrics": {"enabled": False}})  # fmt: skip
    p = Pipeline(cfg)
    t0 = time.perf_counter()
    p.run()
    return time.perf_counter() - t0, sum(r.staged for r in p.sources.runs.values())


def bare_decode(path: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for f in c.decode(s):
            f.to_ndarray(format="rgb24")
            n += 1
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5, help="interleaved timing runs (best of)")
    ap.add_argument(
        "--novelty", type=float, default=None, help="novelty threshold (default: the config default)"
    )
    args = ap.parse_args()

    from framesift.analyzers.collector import DEFAULT_NOVELTY

    novelty = args.novelty
    shown = novelty if novelty is not None else f"{DEFAULT_NOVELTY['pixel']} (default for pixel)"
    path, labels = build_montage()
    n = len(labels)
    budget = len(set(labels))
    work = Path(tempfile.mkdtemp(prefix="fs-bench-collect-"))
    try:
        kept, _, _ = run_collect(path, budget, work / "run", novelty)
        fs_cov, fs_dup, fs_n = score(path, labels, kept)
        uni = uniform(n, budget)
        u_cov, u_dup, u_n = score(path, labels, uni)
        kept_sub, _, _ = run_collect(path, budget, work / "run", novelty, SUB_FPS)
        sub_cov, sub_dup, sub_n = score(path, labels, kept_sub)
        best: dict[str, list[float]] = {
            k: [float("inf"), float("inf")] for k in ("decode", "noop", "collect", "collect_sub")
        }
        seen = n
        for _ in range(args.repeat):
            runs = {
                "decode": timed(bare_decode, path),
                "collect": timed(run_collect, path, budget, work / "run", novelty),
                "noop": timed(bare_pipeline, path),
                "collect_sub": timed(run_collect, path, budget, work / "run", novelty, SUB_FPS),
            }
            for k, (wall, cpu, _res) in runs.items():
                best[k][0] = min(best[k][0], wall)
                best[k][1] = min(best[k][1], cpu)
            nd = runs["decode"][2][1]
            seen = runs["collect"][2][2]
        assert nd == n
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # throughput counts decoded frames of the montage (all of them in every run)
    fps = {k: n / v[0] for k, v in best.items()}
    cpu_fps = {k: n / v[1] for k, v in best.items()}
    assert seen == n
    load = os.getloadavg()[0]
    print(f"montage: {n} frames {W}x{H} @ {FPS} fps, {len(SEGMENTS)} segments, {budget} distinct scenes; "
          f"budget {budget}; novelty threshold {shown}; pixel embedder; CPU ({os.cpu_count()} cores)")  # fmt: skip
    print(f"{'method':<24} {'kept':>5} {'coverage':>9} {'near-dup':>9}")
    print(f"{'framesift collect':<24} {fs_n:>5} {fs_cov:>9.1%} {fs_dup:>9.1%}")
    print(f"{'uniform sampling':<24} {u_n:>5} {u_cov:>9.1%} {u_dup:>9.1%}")
    print(f"{f'collect, {SUB_FPS:g} fps':<24} {sub_n:>5} {sub_cov:>9.1%} {sub_dup:>9.1%}")
    print(f"kept frames: {[(i, labels[i]) for i in kept]}")
    print("threshold sweep (same budget; collector on pixel embeddings of every frame):")
    print(f"{'threshold':>10} {'kept':>5} {'coverage':>9} {'near-dup':>9} {'wanted (no budget)':>19}")
    for thr, (cov, dup, k, wanted) in sweep(path, labels, budget).items():
        print(f"{thr:>10.2f} {k:>5} {cov:>9.1%} {dup:>9.1%} {wanted:>19}")
    print(
        f"throughput (best of {args.repeat} interleaved runs; load average {load:.1f} on {os.cpu_count()} cores)"
    )
    print(f"{'':<24} {'frames/s (wall)':>16} {'frames/CPU-s':>13}")
    for k, label in (
        ("decode", "bare PyAV decode"),
        ("noop", "pipeline, no analyzer"),
        ("collect", "collect pipeline"),
        ("collect_sub", f"collect, {SUB_FPS:g} fps analysed"),
    ):
        print(f"{label:<24} {fps[k]:>16.1f} {cpu_fps[k]:>13.1f}")
    print(f"RESULT coverage={fs_cov:.3f} near_dup={fs_dup:.3f} uniform_coverage={u_cov:.3f} "
          f"uniform_near_dup={u_dup:.3f} collect_vs_decode={fps['collect'] / fps['decode']:.3f} "
          f"collect_vs_decode_cpu={cpu_fps['collect'] / cpu_fps['decode']:.3f} "
          f"noop_pipeline_vs_decode={fps['noop'] / fps['decode']:.3f} "
          f"coverage_8fps={sub_cov:.3f} collect_8fps_vs_decode={fps['collect_sub'] / fps['decode']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

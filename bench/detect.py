"""Open-vocabulary detection and segmentation throughput on CPU, framesift vs the reference packages.

Both sides run the same random-initialised weights (no weights can be downloaded here; cost does not
depend on weight values) on the same real frames (OpenCV's ``vtest.avi`` pedestrian clip from
Debian ``opencv-doc``, 768x576; generated frames when it is absent), interleaved, best of ``--repeat``.

* YOLO-World v2 S at 640: images/s of framesift's ``YoloWorld.detect`` (letterbox as tensor ops,
  text embeddings as a graph input, batched fp32 decode + class-aware NMS) with the runtime and
  precision framesift picks here by default (``auto``: PyTorch bf16 on CPUs with AMX/AVX512-BF16,
  else ONNX Runtime fp32) ÷ ultralytics' own ``YOLOWorld.predict`` loop (fp32: it has no CPU
  reduced-precision mode), frame by frame as it runs a video (headline), and also given the same
  batches as framesift; same conf/iou. Rows for framesift forced to ONNX Runtime fp32 and PyTorch
  fp32 show what precision and runtime each contribute.
* MobileSAM (vit_t): masks/s of framesift's batched prompt decoder (all boxes of a frame in one
  call, masks upscaled to frame resolution) ÷ the reference ``SamPredictor.predict`` box by box, on
  the same image embeddings; plus whole-frame (encoder + all masks) rates for context.

Needs the optional export-time packages ``ultralytics`` (AGPL-3.0) and ``mobilesam-mirror``.
Run: ``python bench/detect.py [--frames 8] [--boxes 16] [--repeat 3]``.
``--device cuda``: GPU figures (wall time, frames already on the GPU; YOLO-World on PyTorch fp16
and fp32, engine-only and end to end; MobileSAM where onnxruntime-gpu is installed). Needs only
ultralytics and mobilesam-mirror besides framesift (no reference loops are timed).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

warnings.filterwarnings("ignore")
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
PROMPTS = ["person", "bicycle", "car", "backpack", "umbrella"]
OV_ROWS = [("ours_ov", "OpenVINO fp32"), ("ours_ov_int8", "OpenVINO INT8")]


def frames(n: int) -> list[np.ndarray]:
    if VTEST.exists():
        import av

        out = []
        with av.open(str(VTEST)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 5 == 0:
                    out.append(f.to_ndarray(format="rgb24"))
                if len(out) >= n:
                    break
        return out
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (576, 768, 3), dtype=np.uint8) for _ in range(n)]


def best(fn: Any, repeat: int) -> float:
    """Best-of-``repeat`` CPU seconds of ``fn`` (process time: all threads of this process).

    Engines run one thread each side, so CPU time is the work done and does not depend on what else
    the (shared) machine runs; on a dedicated machine it equals wall time.
    """
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def bench_yolo(
    imgs: list[np.ndarray],
    batch: int,
    repeat: int,
    cache: Any,
    choice: dict[str, str],
    precision: str = "auto",
) -> dict[str, float]:
    from ultralytics import YOLOWorld

    from framesift.engines.models.yolo_world import YoloWorld
    from framesift.engines.runtimes import available_runtimes

    torch.manual_seed(0)
    ref = YOLOWorld("yolov8s-worldv2.yaml")
    text = torch.nn.functional.normalize(torch.randn(1, len(PROMPTS), 512), dim=-1)
    ref.model.txt_feats = text
    ref.model.model[-1].nc = len(PROMPTS)
    ref.model.names = dict(enumerate(PROMPTS))

    def encoder(prompts: list[str]) -> np.ndarray:
        return text[0].numpy()

    def make(runtime: str, precision: str) -> YoloWorld:
        return YoloWorld(
            ref.model,
            imgsz=640,
            cache=cache,
            device="cpu",
            runtime=runtime,
            precision=precision,
            text_encoder=encoder,
            max_batch=batch,
            threads=1,
            prompts=PROMPTS,
        )

    auto = make("auto", precision)  # what framesift picks on this machine (or with --precision)
    detectors = {"ours": auto, "ours_ort": make("onnxruntime", "fp32"), "ours_torch32": make("torch", "fp32")}
    if not available_runtimes()["openvino"].startswith("unavailable"):
        detectors["ours_ov"] = make("openvino", "fp32")
        if precision != "int8":
            detectors["ours_ov_int8"] = make("openvino", "int8")
    choice["auto"] = f"{auto.choice.runtime} {auto.choice.precision} ({auto.choice.why})"
    if auto.calibration:
        choice["auto"] += f"; calibration: {auto.calibration}"
    chunks = [imgs[i : i + batch] for i in range(0, len(imgs), batch)]

    def runner(det: YoloWorld) -> Any:
        def run() -> None:
            for c in chunks:
                det.detect(c)

        return run

    def run_ref_stream() -> None:  # its predict loop as a video is usually run: frame by frame
        for im in imgs:
            ref.predict(im[..., ::-1], imgsz=640, conf=0.25, iou=0.7, verbose=False)  # BGR in

    def run_ref_batched() -> None:  # same batches as ours
        for c in chunks:
            ref.predict([im[..., ::-1] for im in c], imgsz=640, conf=0.25, iou=0.7, verbose=False)

    fns = {k: runner(d) for k, d in detectors.items()} | {
        "ref": run_ref_stream,
        "ref_batched": run_ref_batched,
    }
    for fn in fns.values():  # warm-up (ultralytics fuses on its first call)
        fn()
    t = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):  # interleaved, best of each
        for k, fn in fns.items():
            t[k] = min(t[k], best(fn, 1))
    return {k: len(imgs) / v for k, v in t.items()}


def bench_sam(imgs: list[np.ndarray], n_boxes: int, repeat: int, cache: Any) -> dict[str, float]:
    from mobile_sam import SamPredictor

    from framesift.engines.models.sam import SamSegmenter, build_reference

    torch.manual_seed(0)
    sam = build_reference("vit_t")
    seg = SamSegmenter(sam, cache=cache, device="cpu", max_boxes=64, threads=1)
    pred = SamPredictor(sam)
    img = imgs[0]
    h, w = img.shape[:2]
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [w * 0.8, h * 0.8], (n_boxes, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(20, [w * 0.2, h * 0.2], (n_boxes, 2))], 1).astype(np.float32)
    pred.set_image(img)
    emb = pred.features.numpy()

    def dec_ours() -> None:
        seg.decode(emb, boxes, (h, w))

    def dec_ref() -> None:
        with torch.no_grad():
            for b in boxes:
                pred.predict(box=b, multimask_output=False)

    def frame_ours() -> None:
        seg.segment(img, boxes)

    def frame_ref() -> None:
        with torch.no_grad():
            pred.set_image(img)
            for b in boxes:
                pred.predict(box=b, multimask_output=False)

    dec_ours(), dec_ref()
    fns = {"dec_ours": dec_ours, "dec_ref": dec_ref, "frame_ours": frame_ours, "frame_ref": frame_ref}
    t = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):  # interleaved, best of each
        for k, fn in fns.items():
            t[k] = min(t[k], best(fn, 1))
    return {k: n_boxes / v for k, v in t.items()}


def _wall(fn: Any, repeat: int) -> float:
    """Best-of-``repeat`` wall seconds of ``fn`` with the GPU drained before and after."""
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return min(times)


def main_cuda(args: argparse.Namespace) -> None:
    """GPU mode: YOLO-World v2 S @640 images/s and MobileSAM masks/s on CUDA, frames already on the
    GPU (as ``decoder: pyav-cuda`` with ``gpu_frames`` hands them over). The reference modules are
    built here (random weights) and exported by this machine's torch."""
    from framesift.engines.cache import EngineCache
    from framesift.engines.models.yolo_world import YoloWorld, build_reference
    from framesift.engines.runtimes import available_runtimes

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    name = torch.cuda.get_device_name(0)
    imgs = frames(args.frames)
    gpu_imgs = [torch.from_numpy(im).cuda() for im in imgs]
    text = torch.nn.functional.normalize(torch.randn(len(PROMPTS), 512), dim=-1).numpy()
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = EngineCache(Path(tmp) / "engines")
        torch.manual_seed(0)
        ref = build_reference("s", len(PROMPTS))
        for precision in ("fp16", "fp32"):
            det = YoloWorld(
                ref,
                imgsz=640,
                cache=cache,
                device="cuda",
                runtime="torch",
                precision=precision,
                text_encoder=lambda p: text[: len(p)],
                max_batch=args.batch,
                prompts=PROMPTS,
            )
            det.detect_arrays(gpu_imgs[: args.batch])  # warm-up
            e2e = len(gpu_imgs) / _wall(lambda det=det: det.detect_arrays(gpu_imgs), args.repeat)
            from framesift.engines.models.detect_post import letterbox

            x, _ = letterbox(gpu_imgs[: args.batch], 640, "cuda")
            eng = args.batch / _wall(lambda det=det, x=x: det._raw(x, text), args.repeat)
            print(
                f"YOLO-World v2 S @640 torch {precision} on {name}: engine {eng:.0f} img/s, end to end {e2e:.0f} img/s"
            )
            results[f"yolo_world_{precision}_engine_img_s"] = f"{eng:.0f}"
            results[f"yolo_world_{precision}_img_s"] = f"{e2e:.0f}"
            det.close()
        if available_runtimes()["onnxruntime-cuda"].startswith("unavailable"):
            why = available_runtimes()["onnxruntime-cuda"]
            print(f"MobileSAM on CUDA: not measured (framesift runs SAM on ONNX Runtime; {why})")
            results["sam_masks_s"] = "unmeasured"
        else:
            from framesift.engines.models.sam import SamSegmenter
            from framesift.engines.models.sam import build_reference as sam_reference

            seg = SamSegmenter(sam_reference("vit_t"), cache=cache, device="cuda", max_boxes=64)
            img = gpu_imgs[0]
            h, w = int(img.shape[0]), int(img.shape[1])
            rng = np.random.default_rng(0)
            xy = rng.uniform(0, [w * 0.8, h * 0.8], (args.boxes, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(20, [w * 0.2, h * 0.2], (args.boxes, 2))], 1)
            boxes = boxes.astype(np.float32)
            emb = seg.embed(img)
            seg.decode(emb, boxes, (h, w))
            dec = args.boxes / _wall(lambda: seg.decode(emb, boxes, (h, w)), args.repeat)
            frame = args.boxes / _wall(lambda: seg.segment(img, boxes), args.repeat)
            print(
                f"MobileSAM on {name}: decoder {dec:.0f} masks/s, frame (encoder + masks) {frame:.0f} masks/s"
            )
            results["sam_masks_s"] = f"{dec:.0f}"
            results["sam_frame_masks_s"] = f"{frame:.0f}"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in results.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--boxes", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"], help="framesift's detector"
    )
    args = ap.parse_args()
    if args.device == "cuda":
        main_cuda(args)
        return
    import cv2

    torch.set_num_threads(1)  # one thread per engine on both sides (see best())
    cv2.setNumThreads(1)
    from framesift.engines.cache import EngineCache

    imgs = frames(args.frames)
    src = "vtest.avi" if VTEST.exists() else "generated"
    with tempfile.TemporaryDirectory() as tmp:
        cache = EngineCache(Path(tmp) / "engines")
        t0 = time.perf_counter()
        choice: dict[str, str] = {}
        y = bench_yolo(imgs, args.batch, args.repeat, cache, choice, args.precision)
        s = bench_sam(imgs, args.boxes, args.repeat, cache)
        total = time.perf_counter() - t0
    cpu = f"CPU time, 1 engine thread per side ({os.cpu_count()}-core machine), torch {torch.__version__}"
    print(f"# detect benchmark: {cpu}; frames {imgs[0].shape[1]}x{imgs[0].shape[0]} from {src}; {total:.0f}s")
    from framesift.engines.isa import active_caps, int8_kernels

    print(
        f"# framesift detector here (--precision {args.precision}): {choice['auto']}; the reference runs fp32"
    )
    print(f"# caps: {active_caps() or 'none'}; int8 kernels here: {int8_kernels()}")
    print(f"{'what':<52} {'framesift':>10} {'reference':>10} {'ratio':>7}")
    rows = [
        (f"YOLO-World v2 S @640 img/s vs ref frame loop ({len(PROMPTS)} prompts)", y["ours"], y["ref"]),
        (f"YOLO-World v2 S @640 img/s vs ref batched (batch {args.batch})", y["ours"], y["ref_batched"]),
        ("  same, framesift on ONNX Runtime fp32 vs ref frame loop", y["ours_ort"], y["ref"]),
        ("  same, framesift on PyTorch fp32 vs ref frame loop", y["ours_torch32"], y["ref"]),
        *[(f"  same, framesift on {n} vs ref frame loop", y[k], y["ref"]) for k, n in OV_ROWS if k in y],
        (f"MobileSAM decoder, masks/s ({args.boxes} boxes/frame)", s["dec_ours"], s["dec_ref"]),
        ("MobileSAM frame (encoder + all masks), masks/s", s["frame_ours"], s["frame_ref"]),
    ]
    for name, a, b in rows:
        print(f"{name:<52} {a:>10.2f} {b:>10.2f} {a / b:>6.2f}x")
    print(
        f"RESULT yolo_world_vs_ref={y['ours'] / y['ref']:.2f} "
        f"yolo_world_vs_ref_batched={y['ours'] / y['ref_batched']:.2f} "
        f"yolo_world_ort_fp32_vs_ref={y['ours_ort'] / y['ref']:.2f} "
        f"yolo_world_torch_fp32_vs_ref={y['ours_torch32'] / y['ref']:.2f} "
        f"sam_masks_vs_ref={s['dec_ours'] / s['dec_ref']:.2f} sam_frame_vs_ref={s['frame_ours'] / s['frame_ref']:.2f}"
        + "".join(f" yolo_world_{k[5:]}_vs_ref={y[k] / y['ref']:.2f}" for k, _ in OV_ROWS if k in y)
    )


if __name__ == "__main__":
    main()

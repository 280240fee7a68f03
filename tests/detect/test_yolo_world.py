"""YOLO-World: ONNX parity with the reference model, decode/NMS parity with ultralytics, run-time prompts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from framesift.engines.cache import EngineCache
from framesift.engines.models.detect_post import LetterboxInfo, letterbox, nms, scale_boxes
from framesift.errors import ConfigError
from tests.detect.conftest import IMGSZ, hashed_text_encoder

pytest.importorskip("ultralytics")


def _detector(model, cache: EngineCache, **kw):  # type: ignore[no-untyped-def]
    from framesift.engines.models.yolo_world import YoloWorld

    kw.setdefault("text_encoder", hashed_text_encoder)
    kw.setdefault("runtime", "onnxruntime")
    return YoloWorld(model, imgsz=IMGSZ, cache=cache, device="cpu", **kw)


def _reference_raw(model, x: torch.Tensor, text: torch.Tensor) -> np.ndarray:  # type: ignore[no-untyped-def]
    """The reference model's own raw output (B, 4 + K, A) with ``text`` as its class embeddings."""
    head = model.model[-1]
    old = head.nc
    head.nc = text.shape[0]
    try:
        with torch.no_grad():
            return model.predict(x, txt_feats=text[None])[0].numpy()
    finally:
        head.nc = old


@pytest.mark.parametrize(("k", "hw"), [(2, (IMGSZ, IMGSZ)), (5, (IMGSZ - 32, IMGSZ + 64))])
def test_onnx_equals_reference_raw_outputs(world_model, engine_cache: EngineCache, k: int, hw) -> None:  # type: ignore[no-untyped-def]
    det = _detector(world_model, engine_cache)
    torch.manual_seed(k)
    x = torch.rand(2, 3, *hw)
    text = torch.nn.functional.normalize(torch.randn(k, 512), dim=-1)
    ours = det.raw(x, text.numpy())
    ref = _reference_raw(world_model, x, text)
    assert ours.shape == ref.shape == (2, 4 + k, sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32)))
    np.testing.assert_allclose(ours[:, :4], ref[:, :4], atol=1e-2, rtol=1e-4)  # pixel boxes
    np.testing.assert_allclose(ours[:, 4:], ref[:, 4:], atol=1e-4)  # scores


def _raw_from(rows: list[tuple[float, float, float, float, int, float]], k: int) -> torch.Tensor:
    """(cx, cy, w, h, class, score) rows → raw (1, 4 + k, A) with one class score per anchor."""
    raw = torch.zeros(1, 4 + k, len(rows))
    for a, (cx, cy, w, h, c, s) in enumerate(rows):
        raw[0, :4, a] = torch.tensor([cx, cy, w, h])
        raw[0, 4 + c, a] = s
    return raw


def test_nms_known_answer_and_equals_ultralytics() -> None:
    from ultralytics.utils.nms import non_max_suppression

    rows = [
        (50, 50, 20, 20, 0, 0.90),  # kept
        (52, 50, 20, 20, 0, 0.80),  # IoU 0.82 with the first, same class: suppressed
        (52, 50, 20, 20, 1, 0.85),  # same box, other class: kept (class-aware)
        (120, 120, 30, 30, 2, 0.10),  # below conf: dropped
        (130, 40, 10, 40, 0, 0.60),  # far away: kept
    ]
    raw = _raw_from(rows, 3)
    ours = nms(raw, conf=0.25, iou=0.7)[0]
    expected = torch.tensor(
        [[40, 40, 60, 60, 0.90, 0], [42, 40, 62, 60, 0.85, 1], [125, 20, 135, 60, 0.60, 0]],
        dtype=torch.float32,
    )
    torch.testing.assert_close(ours, expected)
    ref = non_max_suppression(raw.clone(), 0.25, 0.7, max_det=300)[0]
    torch.testing.assert_close(ours, ref)
    agnostic = nms(raw, conf=0.25, iou=0.7, agnostic=True)[0]
    assert agnostic[:, 5].tolist() == [0.0, 0.0]  # the class-1 duplicate now suppressed


def test_nms_equals_ultralytics_on_random_batch() -> None:
    from ultralytics.utils.nms import non_max_suppression

    g = torch.Generator().manual_seed(0)
    b, k, a = 3, 4, 2000
    raw = torch.empty(b, 4 + k, a)
    raw[:, :2] = torch.rand(b, 2, a, generator=g) * 320
    raw[:, 2:4] = 5 + torch.rand(b, 2, a, generator=g) * 80
    raw[:, 4:] = torch.rand(b, k, a, generator=g) ** 4  # few confident boxes
    ours = nms(raw, conf=0.3, iou=0.5, max_det=100)
    ref = non_max_suppression(raw.clone(), 0.3, 0.5, max_det=100)
    for o, r in zip(ours, ref, strict=True):
        assert len(o) > 5
        torch.testing.assert_close(o, r)


def test_letterbox_and_scale_boxes_equal_ultralytics() -> None:
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes as ref_scale

    rng = np.random.default_rng(0)
    for h, w in [(120, 160), (240, 320), (100, 300), (480, 270)]:
        img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        ref = LetterBox((IMGSZ, IMGSZ), auto=False)(image=img).astype(np.float32)
        ours, infos = letterbox([img, img], IMGSZ)
        got = (ours[1].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(got - ref).max() == 0  # CPU path: the same cv2 resize
        gpu_path, _ = letterbox([torch.from_numpy(img)], IMGSZ)  # tensor path (as on a GPU device)
        got_t = (gpu_path[0].permute(1, 2, 0).numpy() * 255).round()
        assert np.abs(got_t - ref).max() <= 1.0  # float bilinear vs cv2's fixed-point bilinear
        boxes = torch.tensor([[3.0, 7.0, 90.0, 150.0], [0.0, 0.0, 160.0, 160.0]])
        expected = ref_scale((IMGSZ, IMGSZ), boxes.clone(), (h, w))
        torch.testing.assert_close(scale_boxes(boxes, infos[0]), expected)
        assert isinstance(infos[0], LetterboxInfo) and infos[0].orig_hw == (h, w)
        # rect (ultralytics' auto=True): smallest multiple-of-32 rectangle
        ref_rect = LetterBox((IMGSZ, IMGSZ), auto=True, stride=32)(image=img).astype(np.float32)
        rect, rinfo = letterbox([img], IMGSZ, rect=True)
        assert rect.shape[2:] == ref_rect.shape[:2]
        assert np.abs((rect[0].permute(1, 2, 0).numpy() * 255).round() - ref_rect).max() == 0
        expected = ref_scale(tuple(rect.shape[2:]), boxes.clone(), (h, w))
        torch.testing.assert_close(scale_boxes(boxes, rinfo[0]), expected)
    mixed, _ = letterbox([img, img[:50]], IMGSZ, rect=True)  # mixed shapes: square
    assert mixed.shape[2:] == (IMGSZ, IMGSZ)


def test_prompts_change_at_run_time_without_rebuild(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    det = _detector(world_model, engine_cache, conf=0.05)
    session = det.session
    built = sorted(str(p) for p in engine_cache.root.glob("*/yolo_world.onnx"))
    frame = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)

    first = det.detect([frame, frame], prompts=["forklift", "person"])
    assert len(first) == 2 and len(first[0]) > 0
    assert set(first[0].data["class_name"]) <= {"forklift", "person"}
    assert first[0].class_id.max() < 2
    second = det.detect([frame], prompts=["cat", "dog", "bird"])[0]
    assert len(second) > 0 and set(second.data["class_name"]) <= {"cat", "dog", "bird"}
    assert second.class_id.max() < 3
    raw = det.raw(letterbox([frame], IMGSZ)[0], det.text_embeddings(["a", "b", "c", "d"]))
    assert raw.shape[1] == 4 + 4
    assert det.session is session
    assert sorted(str(p) for p in engine_cache.root.glob("*/yolo_world.onnx")) == built
    # boxes lie inside the frame
    assert (second.xyxy[:, [0, 2]] <= 160).all() and (second.xyxy[:, [1, 3]] <= 120).all()


def test_empty_prompt_list_is_a_clear_error(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    det = _detector(world_model, engine_cache)
    frame = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ConfigError, match="--prompt"):
        det.detect([frame])
    with pytest.raises(ConfigError, match="at least one"):
        det.detect([frame], prompts=[])
    with pytest.raises(ConfigError):
        det.set_prompts(["person", "  "])


def test_text_embeddings_cached_per_prompt_set(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    calls: list[list[str]] = []

    def encoder(texts):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return hashed_text_encoder(texts)

    det = _detector(world_model, engine_cache, text_encoder=encoder, text_cache_size=2)
    a = det.text_embeddings(["x", "y"])
    assert det.text_embeddings(["x", "y"]) is a
    det.text_embeddings(["z"])
    det.text_embeddings(["w"])  # evicts ("x", "y")
    det.text_embeddings(["x", "y"])
    assert calls == [["x", "y"], ["z"], ["w"], ["x", "y"]]


def test_clip_text_encoder_feeds_detector(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("open_clip")
    from framesift.engines.models.yolo_world import ClipTextEncoder

    enc = ClipTextEncoder("ViT-B-32", pretrained=None)  # random weights: no hub here
    emb = enc(["person in a hi-vis vest", "forklift"])
    assert emb.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    det = _detector(world_model, engine_cache, text_encoder=enc, conf=0.05)
    out = det.detect([np.zeros((96, 128, 3), np.uint8)], prompts=["person in a hi-vis vest", "forklift"])
    assert set(out[0].data["class_name"]) <= {"person in a hi-vis vest", "forklift"}
    det.close()  # releases the shared CLIP text engine


def test_detectors_share_one_clip_text_engine(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("open_clip")
    from framesift.engines.detectors import build_detector
    from framesift.engines.detectors.yolo_world import YoloWorldConfig
    from framesift.engines.models.yolo_world import YoloWorld
    from framesift.engines.shared import shared_count
    from tests.engines.clip_helpers import TINY_D512, register_tiny

    register_tiny()
    onnx = _detector(world_model, engine_cache).onnx_path
    clip = dict(clip_model=TINY_D512, clip_pretrained=None)  # random weights (no hub here)
    a = _detector(onnx, engine_cache, text_encoder=None, prompts=["forklift"], **clip)
    spec = YoloWorldConfig(model=str(onnx), prompts=["person"], imgsz=IMGSZ, device="cpu", **clip)
    b = build_detector(spec, cache=engine_cache)  # what the tracker calls
    assert isinstance(b, YoloWorld) and b.prompts == ("person",) and b.plan.runtime == "onnxruntime"
    lease = a._leases[0]
    assert b._leases[0].engine is lease.engine and shared_count(lease.key) == 2  # built once
    assert lease.engine.text_only and lease.engine.runtime_name == "torch"
    np.testing.assert_array_equal(a.text_embeddings(["forklift"]), lease(["forklift"]))
    assert len(b.detect([np.zeros((64, 96, 3), np.uint8)])) == 1
    a.close()
    assert shared_count(lease.key) == 1
    b.close()
    assert shared_count(lease.key) == 0


def test_engine_cache_rebuilds_corrupt_and_changed(world_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cache = EngineCache(tmp_path)
    det = _detector(world_model, cache)
    path = det.onnx_path
    path.write_bytes(path.read_bytes()[:1000])  # truncated engine: must not be loaded
    again = _detector(world_model, cache)
    assert again.onnx_path == path and path.stat().st_size > 1000
    from framesift.engines.models.yolo_world import YoloWorld

    bigger = YoloWorld(
        world_model,
        imgsz=192,
        cache=cache,
        device="cpu",
        runtime="onnxruntime",
        text_encoder=hashed_text_encoder,
    )
    assert bigger.onnx_path != path and len(list(tmp_path.glob("*/yolo_world.onnx"))) == 2


def test_runtime_path_does_not_import_ultralytics(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    onnx_path = _detector(world_model, engine_cache).onnx_path
    code = (
        "import sys, numpy as np\n"
        "from framesift.engines.models.yolo_world import YoloWorld\n"
        "from tests.detect.conftest import hashed_text_encoder\n"
        f"d = YoloWorld({str(onnx_path)!r}, imgsz={IMGSZ}, device='cpu', text_encoder=hashed_text_encoder)\n"
        "d.detect([np.zeros((50, 70, 3), np.uint8)], prompts=['a'])\n"
        "assert 'ultralytics' not in sys.modules, 'runtime imported ultralytics'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize(("k", "hw"), [(2, (IMGSZ, IMGSZ)), (5, (IMGSZ - 32, IMGSZ + 64))])
def test_torch_program_fp32_equals_reference_raw_outputs(
    world_model, engine_cache: EngineCache, k: int, hw
) -> None:  # type: ignore[no-untyped-def]
    det = _detector(world_model, engine_cache, runtime="torch", precision="fp32")
    assert det.session is None and det.model_path.suffix == ".pt2"
    torch.manual_seed(k)
    x = torch.rand(3, 3, *hw)  # batch, size and class count differ from the export example
    text = torch.nn.functional.normalize(torch.randn(k, 512), dim=-1)
    ours = det.raw(x, text.numpy())
    ref = _reference_raw(world_model, x, text)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours[:, :4], ref[:, :4], atol=1e-2, rtol=1e-4)
    np.testing.assert_allclose(ours[:, 4:], ref[:, 4:], atol=1e-4)


def _cpu_runs_bf16_convolutions() -> bool:
    """oneDNN's bf16 convolution (what CPU programs run) needs AVX512 or AVX-NE-CONVERT; some CPUs
    have neither."""
    from framesift.engines.runtimes.onednn import ConvSiLU, onednn_available

    if not onednn_available():
        return True  # plain ATen convolutions
    conv = ConvSiLU(torch.nn.Conv2d(3, 4, 3, padding=1)).to(torch.bfloat16)
    try:
        with torch.no_grad():
            conv(torch.zeros(1, 3, 8, 8, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _cpu_runs_bf16_convolutions(), reason="this CPU cannot run bf16 convolutions")
def test_torch_program_bf16_runs_bf16_and_stays_close(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    det = _detector(world_model, engine_cache, runtime="torch", precision="bf16")
    assert det.choice.precision == "bf16"
    assert det.program is not None
    weights = [p for p in det.program.module.parameters() if p.ndim == 4]
    assert weights and all(p.dtype == torch.bfloat16 for p in weights)  # really runs in bf16
    torch.manual_seed(3)
    x = torch.rand(2, 3, IMGSZ, IMGSZ + 32)
    text = torch.nn.functional.normalize(torch.randn(3, 512), dim=-1)
    ours = det.raw(x, text.numpy())
    ref = _reference_raw(world_model, x, text)
    assert ours.dtype == np.float32  # boxes are decoded in fp32
    assert np.abs(ours[:, :4] - ref[:, :4]).max() < 1.0  # pixels
    assert np.abs(ours[:, 4:] - ref[:, 4:]).max() < 0.02
    fp32 = _detector(world_model, engine_cache, runtime="torch", precision="fp32").raw(x, text.numpy())
    assert not np.array_equal(ours, fp32)  # a different graph from the fp32 one


def test_torch_prompts_change_without_rebuild(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    det = _detector(world_model, engine_cache, runtime="torch", precision="fp32", conf=0.05)
    program = det.program
    frame = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    a = det.detect([frame], prompts=["forklift", "person"])[0]
    b = det.detect([frame], prompts=["cat", "dog", "bird"])[0]
    assert set(a.data["class_name"]) <= {"forklift", "person"} and len(a)
    assert set(b.data["class_name"]) <= {"cat", "dog", "bird"} and len(b)
    assert det.program is program


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from framesift.engines import plan

    def choose_runtime(runtime: str, device: str, precision: str, source_kind: str) -> plan.EnginePlan:
        """The engine plan of YOLO-World for a source of ``source_kind`` (onnx, pt2, module)."""
        artefact = plan.Artefact(f"m.{source_kind}", source_kind) if source_kind in ("onnx", "pt2") else None  # type: ignore[arg-type]
        return plan.plan_engine(
            "yolo_world", runtime=runtime, device=device, precision=precision, artefact=artefact
        )

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: "AVX512-BF16")
    c = choose_runtime("auto", "auto", "auto", "module")
    assert (c.runtime, c.device, c.precision) == ("torch", "cpu", "bf16") and "(AVX512-BF16)" in c.why
    assert choose_runtime("auto", "auto", "fp32", "module").runtime == "onnxruntime"
    assert choose_runtime("auto", "cpu", "auto", "onnx").runtime == "onnxruntime"
    assert choose_runtime("auto", "cpu", "auto", "pt2").runtime == "torch"
    monkeypatch.setattr(plan, "cpu_bf16_kind", lambda: None)
    c = choose_runtime("auto", "auto", "auto", "module")
    assert (c.runtime, c.precision) == ("onnxruntime", "fp32")
    assert choose_runtime("torch", "cpu", "auto", "module").precision == "fp32"
    for args, match in (
        (("torch", "cpu", "auto", "onnx"), "runtime onnxruntime"),
        (("onnxruntime", "cpu", "bf16", "module"), "fp32"),
        (("torch", "cpu", "fp16", "module"), "bf16 or fp32"),
        (("tensorflow", "cpu", "auto", "module"), "choose one of"),
        (("torch", "cuda", "auto", "module"), "no CUDA GPU"),
    ):
        with pytest.raises(ConfigError, match=match):
            choose_runtime(*args)


def test_program_loads_without_ultralytics(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    path = _detector(world_model, engine_cache, runtime="torch", precision="fp32").model_path
    code = (
        "import sys, numpy as np\n"
        "from framesift.engines.models.yolo_world import YoloWorld\n"
        "from tests.detect.conftest import hashed_text_encoder\n"
        f"d = YoloWorld({str(path)!r}, imgsz={IMGSZ}, device='cpu', text_encoder=hashed_text_encoder)\n"
        "assert d.choice.runtime == 'torch'\n"
        "d.detect([np.zeros((50, 70, 3), np.uint8)], prompts=['a'])\n"
        "assert 'ultralytics' not in sys.modules, 'runtime imported ultralytics'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def test_cpu_program_fuses_conv_silu_and_folds_head_batchnorm(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    from framesift.engines.runtimes.onednn import onednn_available

    if not onednn_available():
        pytest.skip("this PyTorch build has no oneDNN")
    det = _detector(world_model, engine_cache, runtime="torch", precision="fp32")
    assert det.program is not None
    targets = [str(n.target) for n in det.program.module.graph.nodes if n.op == "call_function"]
    fused = [t for t in targets if "_convolution_pointwise" in t]
    assert len(fused) >= 50, targets  # every Conv+SiLU of the v2 S backbone, neck and head
    assert not [t for t in targets if "silu" in t or "batch_norm" in t], targets


def test_program_file_keeps_its_precision_and_device(world_model, engine_cache: EngineCache) -> None:  # type: ignore[no-untyped-def]
    from framesift.engines.models.yolo_world import YoloWorld

    path = _detector(world_model, engine_cache, runtime="torch", precision="bf16").model_path
    det = YoloWorld(path, imgsz=IMGSZ, text_encoder=hashed_text_encoder)  # auto: what the file holds
    assert (det.choice.runtime, det.choice.device, det.choice.precision) == ("torch", "cpu", "bf16")
    with pytest.raises(ConfigError, match=r"exported in bf16, not fp32: set precision: bf16"):
        YoloWorld(path, imgsz=IMGSZ, precision="fp32", text_encoder=hashed_text_encoder)
    with pytest.raises(ConfigError, match=r"exported for cpu, not cuda: set device: cpu"):
        YoloWorld(path, imgsz=IMGSZ, device="cuda", text_encoder=hashed_text_encoder)
    with pytest.raises(ConfigError, match=r"runs on runtime torch, not onnxruntime"):
        YoloWorld(path, imgsz=IMGSZ, runtime="onnxruntime", text_encoder=hashed_text_encoder)

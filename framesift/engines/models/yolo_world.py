"""YOLO-World v2 open-vocabulary detector: image batch **and** text embeddings are graph inputs.

Prompts → CLIP text embeddings (cached per prompt set) → detector graph → letterbox-aware decode +
class-aware NMS → ``sv.Detections`` whose ``data["class_name"]`` are the prompts. Changing prompts
changes only the text input; the engine is never rebuilt.

The engine plan (:func:`framesift.engines.plan.plan_engine`, model ``yolo_world``) picks the runtime:
ONNX Runtime (an exported ``.onnx``, fp32) or PyTorch (a ``torch.export`` program, ``.pt2``, in the
engine precision: bf16 on CPUs with AMX/AVX512-BF16 — about twice the fp32 rate on an AVX512-BF16
core, more with AMX — fp16 on CUDA). Box decoding stays fp32 in both.

The text embeddings come from YOLO-World's own CLIP (``clip_model``/``clip_pretrained``): a text-only
CLIP engine built once per process and shared (:func:`framesift.engines.shared.clip_text_engine`).

The reference implementation (``ultralytics``, AGPL-3.0) is needed **only to export**
(:mod:`.yolo_world_export`); the runtime path needs only ``onnxruntime`` or ``torch``, and CLIP.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from framesift.engines.base import Detector, Embedder, ImageLike, as_images
from framesift.engines.cache import EngineCache, file_sha256
from framesift.engines.models.detect_post import decode, letterbox
from framesift.engines.models.yolo_world_export import (
    EXPORT_VERSION,
    OPSET,
    TEXT_DIM,
    VARIANTS,
    WorldExport,
    build_reference,
    check_model_file,
    export_cached,
    export_onnx,
    export_program,
    load_program,
    load_reference,
)
from framesift.engines.plan import Artefact, EnginePlan, plan_engine
from framesift.engines.quantize import calibration_set, yolo_world_int8
from framesift.engines.runtimes.base import Precision, TensorSpec
from framesift.engines.runtimes.openvino_runtime import OpenVinoSession, openvino_engine
from framesift.engines.runtimes.ort_runtime import OnnxSession
from framesift.engines.runtimes.torch_runtime import TorchRuntime
from framesift.engines.shared import ClipTextLease, Lease, clip_text_engine
from framesift.errors import ConfigError, EngineError

if TYPE_CHECKING:
    from framesift.engines.detectors.yolo_world import YoloWorldConfig

__all__ = [
    "EXPORT_VERSION",
    "OPSET",
    "TEXT_DIM",
    "VARIANTS",
    "ClipTextEncoder",
    "TextEncoder",
    "WorldExport",
    "YoloWorld",
    "build_reference",
    "export_onnx",
    "export_program",
    "load_program",
    "load_reference",
]

log = logging.getLogger("framesift.engines.yolo_world")

TextEncoder = Callable[[Sequence[str]], np.ndarray]
TEXT_DEVICE = "cpu"  # the text tower runs once per prompt set: the CPU, in fp32, leaves the GPU alone


def ClipTextEncoder(
    model: str = "ViT-B-32", pretrained: str | None = "openai", device: str = TEXT_DEVICE
) -> ClipTextLease:
    """The shared CLIP text engine of ``model`` with ``pretrained`` (an open_clip tag, a local
    checkpoint path, or None for random weights), as YOLO-World's text encoder (a callable
    texts → (K, dim) L2-normalised). Prefer :meth:`YoloWorld.from_config`, which builds it."""
    return clip_text_engine(model, pretrained, device=device)


def calibration_text(k: int = 8, seed: int = 0) -> np.ndarray:
    """Unit vectors standing in for prompt embeddings while calibrating (their paths stay fp32)."""
    v = np.random.default_rng(seed).standard_normal((k, TEXT_DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _program_artefact(program: Any, path: Path) -> Artefact:
    """A ``.pt2`` program fixes its precision and device (CPU programs hold oneDNN ops)."""
    params = [t for t in program.parameters() if t.is_floating_point()]
    dtypes = {str(t.dtype) for t in params}
    own: Precision = {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(  # type: ignore[assignment]
        min(dtypes, default=""), "fp32"
    )
    own_device = "cuda" if any(t.is_cuda for t in params) else "cpu"
    return Artefact(str(path), "pt2", precision=own, device=own_device)


class YoloWorld(Detector):
    """YOLO-World v2 with run-time prompts, on the runtime the engine plan picks.

    ``source``: an exported ``.onnx`` (ONNX Runtime) or ``.pt2`` (PyTorch) file; a ``.pt`` checkpoint
    or an ``nn.Module`` (exported once for the planned runtime through the engine cache, needs
    ultralytics); or a variant letter ``s/m/l/x`` (random weights: for benchmarks and tests only — no
    weights can be downloaded here).

    ``text_encoder``: a callable texts → (K, 512) L2-normalised embeddings, or an :class:`Embedder`
    with a text tower; None → the shared CLIP text engine of ``clip_model`` with ``clip_pretrained``
    (built on first use). Leases on shared engines (given or acquired) are released by :meth:`close`.
    """

    name = "yolo_world"

    def __init__(
        self,
        source: str | Path | nn.Module = "s",
        *,
        text_encoder: TextEncoder | Embedder | None = None,
        prompts: Sequence[str] | None = None,
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        max_batch: int = 16,
        device: str = "auto",
        runtime: str = "auto",
        precision: str = "auto",
        threads: int | None = None,
        cache: EngineCache | None = None,
        text_cache_size: int = 32,
        rect: bool = True,
        clip_model: str = "ViT-B-32",
        clip_pretrained: str | None = "openai",
        calibration: Any = None,
    ) -> None:
        if imgsz % 32:
            raise ConfigError(f"YOLO-World imgsz must be a multiple of 32, got {imgsz}")
        self.imgsz, self.conf, self.iou, self.max_det = imgsz, conf, iou, max_det
        self.max_batch = max_batch
        self.rect = rect
        self.cache = cache or EngineCache()
        self.clip_model, self.clip_pretrained = clip_model, clip_pretrained
        model, kind = self._source(source)
        program = None
        artefact = None
        if kind == "pt2":
            program = load_program(model)  # type: ignore[arg-type]
            artefact = _program_artefact(program, Path(str(model)))
        elif kind == "onnx":
            artefact = Artefact(str(model), "onnx")
        plan = plan_engine(
            "yolo_world", runtime=runtime, device=device, precision=precision, artefact=artefact
        )
        self.plan: EnginePlan = plan
        log.info("YOLO-World: %s", plan.describe())
        self.calibration: str | None = None
        self.session: OnnxSession | OpenVinoSession | None = None
        self.program: TorchRuntime | None = None
        if plan.runtime == "openvino":
            onnx = model if isinstance(model, Path) else export_cached(model, kind, imgsz, self.cache)
            int8 = None
            if plan.precision == "int8":
                int8 = yolo_world_int8(
                    lambda fs: letterbox(fs, imgsz, "cpu", rect=False)[0].numpy(),
                    calibration_text(),
                    calibration_set(calibration),
                )
                self.calibration = int8.calibration.describe()  # what the report says
            rt, self.model_path = openvino_engine(
                self.cache,
                onnx,
                int8=int8,
                label=f"yolo_world_v2/{kind if not isinstance(model, Path) else model.name}",
                weights_hash=file_sha256(onnx),
                device=plan.device,
                precision=plan.precision,
                threads=threads,
            )
            self.session = OpenVinoSession(rt, self.model_path)
            self.torch_device = "cpu"
        elif plan.runtime == "onnxruntime":
            self.model_path = (
                model if isinstance(model, Path) else export_cached(model, kind, imgsz, self.cache)
            )
            self.session = OnnxSession(self.model_path, device=plan.device, threads=threads)
            self.torch_device = "cuda" if "CUDAExecutionProvider" in self.session.providers else "cpu"
        else:
            if isinstance(model, Path):
                self.model_path = model
            else:
                self.model_path = export_cached(model, kind, imgsz, self.cache, plan)
            self.torch_device = plan.device
            self.program = TorchRuntime(
                program if program is not None else load_program(self.model_path),
                [
                    TensorSpec("images", plan.precision, ("batch", 3, "h", "w")),
                    TensorSpec("text", plan.precision, ("k", TEXT_DIM)),
                ],
                [TensorSpec("output", "fp32", ("batch", "4+k", "anchors"))],
                device=plan.device,
                precision=plan.precision,
                channels_last=plan.device == "cpu",
                threads=threads,
            )
        self._leases: list[Lease[Any]] = []
        self._text_encoder: TextEncoder | None = None
        if text_encoder is not None:
            self._text_encoder = self._encoder_of(text_encoder)
        self._text_cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.Lock()
        self.prompts: tuple[str, ...] = ()
        if prompts is not None:
            self.set_prompts(prompts)

    @classmethod
    def from_config(cls, cfg: YoloWorldConfig, *, cache: EngineCache | None = None) -> YoloWorld:
        """The detector a :class:`~framesift.engines.detectors.yolo_world.YoloWorldConfig` describes
        (its text embeddings from the shared CLIP text engine of ``clip_model``/``clip_pretrained``)."""
        return cls(
            cfg.model,
            prompts=cfg.prompts,
            imgsz=cfg.imgsz,
            conf=cfg.conf,
            iou=cfg.iou,
            max_det=cfg.max_det,
            max_batch=cfg.max_batch,
            device=cfg.device,
            runtime=cfg.runtime,
            precision=cfg.precision,
            clip_model=cfg.clip_model,
            clip_pretrained=cfg.clip_pretrained,
            cache=cache,
            calibration=cfg.calibration,
        )

    @property
    def choice(self) -> EnginePlan:
        """The engine plan (older name)."""
        return self.plan

    def _encoder_of(self, encoder: Any) -> TextEncoder:
        """A callable of ``encoder``; a lease is kept, to be released by :meth:`close`."""
        if isinstance(encoder, Lease):
            self._leases.append(encoder)
            if not callable(encoder):
                encoder = encoder.engine
        if isinstance(encoder, Embedder):
            return encoder.embed_texts
        return encoder

    @property
    def text_encoder(self) -> TextEncoder:
        """Prompts → (K, 512) embeddings; the shared CLIP text engine unless one was given."""
        if self._text_encoder is None:
            self._text_encoder = self._encoder_of(
                clip_text_engine(self.clip_model, self.clip_pretrained, device=TEXT_DEVICE)
            )
        return self._text_encoder

    @property
    def onnx_path(self) -> Path:
        """The ONNX file the ONNX Runtime session runs (ONNX Runtime only)."""
        if self.session is None:
            raise EngineError("this YOLO-World detector runs on PyTorch: see model_path", engine=self.name)
        return self.model_path

    def _source(self, source: str | Path | nn.Module) -> tuple[Path | nn.Module, str]:
        """(exported file or reference module, kind: onnx / pt2 / a cache label for a module)."""
        if isinstance(source, nn.Module):
            return source, "module"
        text = str(source)
        if text in VARIANTS:
            log.warning("YOLO-World %s with RANDOM weights (benchmark/test only)", VARIANTS[text])
            torch.manual_seed(0)
            return build_reference(text), f"random-{text}"
        path = check_model_file(text)
        if path.suffix.lower() in (".onnx", ".pt2"):
            return path, path.suffix[1:].lower()
        return load_reference(path), path.name

    def text_embeddings(self, prompts: Sequence[str]) -> np.ndarray:
        """(K, 512) float32 embeddings of ``prompts``, cached per prompt set (LRU, bounded)."""
        key = tuple(prompts)
        if not key or any(not p.strip() for p in key):
            raise ConfigError("no prompts given: pass at least one non-empty text prompt (--prompt forklift)")
        with self._lock:
            hit = self._text_cache.get(key)
            if hit is not None:
                self._text_cache.move_to_end(key)
                return hit
        emb = np.ascontiguousarray(self.text_encoder(list(key)), dtype=np.float32)
        if emb.shape != (len(key), TEXT_DIM):
            raise EngineError(
                f"text encoder returned {emb.shape}, YOLO-World needs ({len(key)}, {TEXT_DIM}) "
                "(CLIP ViT-B/32 text embeddings)",
                engine=self.name,
            )
        with self._lock:
            self._text_cache[key] = emb
            while len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        return emb

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Switch the class set; only text embeddings are (re)computed."""
        self.text_embeddings(prompts)
        self.prompts = tuple(prompts)

    def raw(self, batch: torch.Tensor, text: np.ndarray) -> np.ndarray:
        """Run the graph on a letterboxed batch → (B, 4 + K, A) float32."""
        return self._raw(batch, text).cpu().numpy()

    def _raw(self, batch: torch.Tensor, text: np.ndarray) -> torch.Tensor:
        if self.program is not None:
            return self.program.run({"images": batch, "text": text}, as_torch=True)["output"]
        assert self.session is not None
        images = batch.detach().cpu().numpy() if batch.device.type != "cpu" else batch.numpy()
        out = self.session.run({"images": np.ascontiguousarray(images), "text": text})[0]
        return torch.from_numpy(out).to(self.torch_device)

    def detect(self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None) -> list[Any]:
        """Detections per image as ``supervision.Detections`` (class names in ``data``)."""
        import supervision as sv

        names = np.array(self.prompts if prompts is None else tuple(prompts))
        out: list[Any] = []
        for d in self.detect_arrays(images, prompts):
            cls = d[:, 5].astype(int)
            out.append(
                sv.Detections(
                    xyxy=d[:, :4].astype(np.float32),
                    confidence=d[:, 4].astype(np.float32),
                    class_id=cls,
                    data={"class_name": names[cls]},
                )
            )
        return out

    def detect_arrays(
        self, images: Sequence[ImageLike], prompts: Sequence[str] | None = None
    ) -> list[np.ndarray]:
        """Detections per image as ``(N, 6)`` float32 rows ``x1, y1, x2, y2, confidence, class``."""
        if prompts is not None:
            self.set_prompts(prompts)
        if not self.prompts:
            raise ConfigError("no prompts set: pass at least one text prompt (--prompt forklift)")
        text = self.text_embeddings(self.prompts)
        frames = as_images(images)
        out: list[np.ndarray] = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start : start + self.max_batch]
            batch, infos = letterbox(chunk, self.imgsz, self.torch_device, rect=self.rect)
            raw = self._raw(batch, text)
            out.extend(
                det.cpu().numpy()
                for det in decode(raw, infos, conf=self.conf, iou=self.iou, max_det=self.max_det)
            )
        return out

    def close(self) -> None:
        """Release the sessions and this detector's leases on shared text engines."""
        for lease in self._leases:
            lease.close()
        self._leases.clear()
        if self.session is not None:
            self.session.close()
        if self.program is not None:
            self.program.close()

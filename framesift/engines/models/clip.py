"""CLIP (open_clip) as an :class:`Embedder` on any runtime.

A model comes from an open_clip name + pretrained tag (downloaded by open_clip where a hub is
reachable), a local checkpoint, or an exported ONNX file (self-describing: framesift writes the
preprocessing, logit scale and dimension into its metadata); see :mod:`.clip_weights`. The engine
plan (:mod:`framesift.engines.plan`) picks runtime, device and precision. The towers are exported to
ONNX with a dynamic batch axis (:mod:`.clip_onnx`, :mod:`framesift.engines.export`), cached (see
:mod:`framesift.engines.cache`) and run by the planned runtime; preprocessing runs batched on the
engine's device (:mod:`.clip_preprocess`). A text-only engine (``text_only=True``) serves prompt
embeddings (YOLO-World's, through :func:`framesift.engines.shared.clip_text_engine`).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from framesift.engines.base import Embedder, ImageLike, as_images
from framesift.engines.cache import EngineCache, device_descriptor, file_sha256
from framesift.engines.export import Exporter, export_key, export_onnx, weights_hash
from framesift.engines.models.clip_onnx import (
    IMAGE_INPUT,
    IMAGE_OUTPUT,
    ONNX_OPSET,
    TEXT_INPUT,
    TEXT_OUTPUT,
    ClipInfo,
    model_info,
    text_onnx_for,
    towers,
    validate_onnx,
)
from framesift.engines.models.clip_preprocess import ClipPreprocessor, PreprocessCfg
from framesift.engines.models.clip_weights import load_open_clip
from framesift.engines.plan import Artefact, EnginePlan, plan_engine
from framesift.engines.quantize import calibration_set, clip_image_int8, clip_visual_int8_torch
from framesift.engines.runtimes import Precision, Runtime, TensorSpec
from framesift.engines.runtimes.base import is_out_of_memory
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.clip")

TEXT_CACHE_SIZE = 64
TRT_OPT_BATCH = 512  # kernels tuned for batches up to this; the profile reaches max_batch


class ClipEmbedder(Embedder):
    """CLIP image/text embeddings and zero-shot classification on the planned runtime.

    Parameters mirror :class:`framesift.config.engines.EngineConfig` (``precision`` may be
    ``auto``); ``plan`` gives an already made :class:`EnginePlan` instead of ``runtime``, ``device``
    and ``precision``. ``torch_model`` (with its ``preprocess`` config) injects an already built
    open_clip model (tests, benchmarks). ``text_only`` builds the text tower alone (prompt
    embeddings): ``embed_images`` then raises EngineError.
    """

    supports_text = True

    def __init__(
        self,
        model: str = "ViT-B-32",
        *,
        pretrained: str | None = None,
        checkpoint: str | None = None,
        onnx: str | None = None,
        runtime: str = "auto",
        device: str = "auto",
        precision: Precision | Literal["auto"] = "fp32",
        max_batch: int = 64,
        cache_dir: str | None = None,
        torch_model: Any = None,
        preprocess: PreprocessCfg | None = None,
        offline: bool = False,
        compile: bool = False,
        cuda_graphs: bool = False,
        threads: int | None = None,
        exporter: Exporter = "dynamo",
        text_cache_size: int = TEXT_CACHE_SIZE,
        text_only: bool = False,
        plan: EnginePlan | None = None,
        calibration: Any = None,
    ) -> None:
        if max_batch < 1:
            raise EngineError(f"max_batch must be ≥ 1 (got {max_batch})", engine="clip")
        self.max_batch = max_batch
        self.cache = EngineCache(cache_dir)
        self._exporter: Exporter = exporter
        self._onnx = Path(onnx) if onnx else None
        self.text_only = text_only
        self.calibration: Any = calibration  # precision int8: a video path or frames; None: generated
        if plan is None:
            plan = plan_engine(
                "clip_text" if text_only else "clip",
                runtime=runtime,
                device=device,
                precision=precision,
                artefact=Artefact(str(self._onnx), "onnx") if self._onnx is not None else None,
            )
        self.plan = plan
        self.runtime_name, self.device = plan.runtime, plan.device
        self.precision: Precision = plan.precision
        self._net: Any = None
        self._run_net: Any = None
        if self._onnx is not None:
            self._init_from_onnx(self._onnx)
        else:
            loaded = torch_model is None
            if torch_model is None:
                torch_model, preprocess = load_open_clip(
                    model, pretrained=pretrained, checkpoint=checkpoint, offline=offline
                )
            elif preprocess is None:
                import open_clip

                preprocess = PreprocessCfg.from_open_clip(open_clip.get_model_preprocess_cfg(torch_model))
            assert preprocess is not None
            self._net = torch_model.eval()
            label = pretrained or (Path(checkpoint).name if checkpoint else "random")
            self.info = model_info(self._net, model, label, preprocess, weights_hash(self._net))
            if text_only and loaded:  # our own copy: the image tower's weights are not needed
                self._net.visual = None
        self.name = f"clip:{self.info.model}@{self.runtime_name}"
        self.dim = self.info.embed_dim
        self.logit_scale = self.info.logit_scale
        self._tokenizer = self._make_tokenizer()
        self.preprocessor = ClipPreprocessor(self.info.preprocess, self.device)
        self.artefacts: dict[str, Path] = {}  # cached files backing this engine (none for torch)
        self._rt_options: dict[str, Any] = {
            "compile": compile,
            "cuda_graphs": cuda_graphs,
            "threads": threads,
        }
        self._text_rt: Runtime | None = None
        self._text_built = False
        self._text_lock = threading.RLock()
        self._text_cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self.image_rt: Runtime | None = None if text_only else self._build_tower("image")
        if text_only:
            self.prepare(text=True)
        log.info(
            "CLIP%s %s (%s weights, dim %d) on %s, %s — runtime %s: %s",
            " text tower" if text_only else "",
            self.info.model,
            self.info.pretrained,
            self.dim,
            self.device,
            self.precision,
            self.runtime_name,
            plan.reason,
        )
        if self.info.pretrained == "random":
            log.warning(
                "CLIP %s has random weights: embeddings are meaningless; set engine.pretrained or "
                "engine.checkpoint for real results",
                self.info.model,
            )

    @property
    def model_id(self) -> str:
        """``clip:<model>/<weights label>#<weights hash[:12]>``: the same on every runtime."""
        return f"clip:{self.info.model}/{self.info.pretrained}#{str(self.info.weights_hash)[:12]}"

    # -- construction helpers

    def _init_from_onnx(self, path: Path) -> None:
        if path.is_dir():
            path = path / ("text.onnx" if self.text_only else "image.onnx")
        if not path.is_file():
            raise EngineError(
                f"CLIP ONNX file not found: {path} (export one with: framesift export clip --model NAME "
                "--runtime onnxruntime --out DIR)",
                engine="clip",
            )
        if self.text_only:  # the text tower alone: text.onnx (beside image.onnx, or given itself)
            text = text_onnx_for(path) if "image" in path.name else path
            if text is None:
                raise EngineError(
                    f"CLIP text ONNX file not found beside {path} (a text-only engine needs text.onnx)",
                    engine="clip",
                )
            self.info = validate_onnx(text, "text")
            self._image_onnx: Path | None = None
            self._text_onnx: Path | None = text
        else:
            self.info = validate_onnx(path, "image")
            self._image_onnx = path
            self._text_onnx = text_onnx_for(path)
            if self._text_onnx is not None:
                validate_onnx(self._text_onnx, "text", expect_dim=self.info.embed_dim)
        if not self.info.weights_hash:
            self.info = ClipInfo(**{**self.info.__dict__, "weights_hash": file_sha256(path)})

    def _make_tokenizer(self) -> Callable[[Sequence[str]], Any]:
        import open_clip

        try:
            tok = open_clip.get_tokenizer(self.info.model, context_length=self.info.context_length)
        except Exception:  # a custom architecture not registered in this process
            tok = open_clip.SimpleTokenizer(context_length=self.info.context_length)
        return tok

    def _label(self, tower: str) -> str:
        return f"{self.info.model}/{self.info.pretrained}/{tower}"

    def _onnx_path(self, tower: str) -> Path | None:
        """The ``tower`` ONNX file: the user's, or exported from the torch model into the cache."""
        if self._onnx is not None:
            return self._image_onnx if tower == "image" else self._text_onnx
        half = self.precision == "fp16" and (
            self.runtime_name == "onnxruntime" or self._trt_wants_typed_onnx()
        )
        dev = self.device if half else "cpu"
        th, tw = self.info.preprocess.size
        key = export_key(
            self._label(tower),
            self.info.weights_hash,
            shape_profile={
                "batch": "dynamic",
                "size": [th, tw] if tower == "image" else self.info.context_length,
            },
            device=device_descriptor(dev) if half else "any",
            precision="fp16" if half else "fp32",
            exporter=self._exporter,
            opset=ONNX_OPSET,
        )
        return self.cache.get_or_build(
            key, f"{tower}.onnx", lambda out: self._export_tower(tower, out, dev, half)
        )

    def _export_tower(self, tower: str, out: Path, dev: str, half: bool) -> None:
        import torch

        net = copy.deepcopy(self._net).to(dev)
        if half:
            net = net.half()
        image_tower, text_tower = towers(net)
        th, tw = self.info.preprocess.size
        if tower == "image":
            dtype = torch.float16 if half else torch.float32
            module, example, names = (
                image_tower,
                torch.randn(2, 3, th, tw, device=dev, dtype=dtype),
                (IMAGE_INPUT, IMAGE_OUTPUT),
            )
        else:
            module, example, names = (
                text_tower,
                self._tokenizer(["a photo of a cat.", "a dog"]).to(dev),
                (TEXT_INPUT, TEXT_OUTPUT),
            )
        used = export_onnx(
            module,
            (example,),
            out,
            input_names=[names[0]],
            output_names=[names[1]],
            opset=ONNX_OPSET,
            exporter=self._exporter,
            metadata=self.info.metadata(f"clip-{tower}"),
            label=f"CLIP {self.info.model} {tower} tower",
        )
        log.info("exported CLIP %s tower to ONNX (%s exporter, opset %d)", tower, used, ONNX_OPSET)

    def _build_tower(self, tower: str) -> Runtime | None:
        """The runtime for ``tower`` ('image' | 'text'); None when an ONNX export lacks that tower."""
        th, tw = self.info.preprocess.size
        if self.runtime_name == "torch":
            from framesift.engines.runtimes.torch_runtime import TorchRuntime

            if self._run_net is None:
                # The runtime casts/moves its module in place: never the caller's model.
                same = self.precision == "fp32" and self.device == "cpu"
                self._run_net = self._net if same else copy.deepcopy(self._net)
            image_tower, text_tower = towers(self._run_net)
            o = self._rt_options
            if tower == "image":
                if self.precision == "int8":  # open_clip's encode_image is its visual's forward
                    net = self._run_net
                    net.visual, self.calibration = clip_visual_int8_torch(
                        net.visual, self.preprocessor, IMAGE_INPUT, self.calibration, self._label("image")
                    )
                return TorchRuntime(
                    image_tower,
                    [TensorSpec(IMAGE_INPUT, "float", ("batch", 3, th, tw))],
                    [TensorSpec(IMAGE_OUTPUT, "float", ("batch", self.dim))],
                    device=self.device,
                    precision=self.precision,
                    channels_last=self.device.startswith("cuda"),
                    compile=o["compile"],
                    cuda_graphs=o["cuda_graphs"],
                    threads=o["threads"],
                )
            return TorchRuntime(
                text_tower,
                [TensorSpec(TEXT_INPUT, "int64", ("batch", self.info.context_length))],
                [TensorSpec(TEXT_OUTPUT, "float", ("batch", self.dim))],
                device=self.device,
                precision="fp32" if self.precision == "int8" else self.precision,  # text stays fp32
                threads=o["threads"],
            )
        onnx_path = self._onnx_path(tower)
        if onnx_path is None:
            return None
        self.artefacts[f"{tower}.onnx"] = onnx_path
        if self.runtime_name == "openvino":
            from framesift.engines.runtimes.openvino_runtime import openvino_engine

            int8 = self.precision == "int8" and tower == "image"  # the text tower stays fp32
            spec = None
            if int8:
                spec = clip_image_int8(self.preprocessor, IMAGE_INPUT, calibration_set(self.calibration))
                self.calibration = spec.calibration.describe()  # what the report says
            rt, self.artefacts[f"{tower}.xml"] = openvino_engine(
                self.cache,
                onnx_path,
                label=self._label(tower),
                weights_hash=str(self.info.weights_hash),
                device=self.device,
                precision=self.precision if int8 or self.precision != "int8" else "fp32",
                threads=self._rt_options["threads"],
                int8=spec,
            )
            return rt
        if self.runtime_name == "onnxruntime":
            from framesift.engines.runtimes.ort_runtime import OrtRuntime

            return OrtRuntime(
                onnx_path,
                device=self.device,
                precision=self.precision,
                threads=self._rt_options["threads"],
                trt_cache_dir=self.cache.root / "ort-trt",
            )
        return self._build_tensorrt(tower, onnx_path)

    def _trt_wants_typed_onnx(self) -> bool:
        """TensorRT >= 11 builds only strongly typed networks: fp16 needs an fp16 ONNX export."""
        if self.runtime_name != "tensorrt":
            return False
        from framesift.engines.runtimes.tensorrt_runtime import import_tensorrt, precision_mode

        mode = precision_mode(str(import_tensorrt().__version__), self.precision)
        return mode.onnx_precision == "fp16"

    def _build_tensorrt(self, tower: str, onnx_path: Path) -> Runtime:
        from framesift.engines.runtimes.tensorrt_runtime import TensorRTRuntime, cached_engine

        engine_file = cached_engine(
            self.cache,
            onnx_path,
            f"{tower}.plan",
            label=self._label(tower),
            weights_hash=self.info.weights_hash,
            device=self.device,
            precision=self.precision,
            opt_batch=min(self.max_batch, TRT_OPT_BATCH),
            max_batch=self.max_batch,
        )
        self.artefacts[f"{tower}.plan"] = engine_file
        return TensorRTRuntime(engine_file.read_bytes(), device=self.device, precision=self.precision)

    @property
    def text_rt(self) -> Runtime | None:
        """The text tower's runtime, built on first use (pipelines that only embed images skip it)."""
        if not self._text_built:
            with self._text_lock:
                if not self._text_built:
                    self._text_rt = self._build_tower("text")
                    self._text_built = True
        return self._text_rt

    def prepare(self, *, text: bool = True) -> None:
        """Build every engine now (``framesift export``), instead of on first use."""
        if text:
            _ = self.text_rt

    # -- inference

    def _run_chunked(self, rt: Runtime, inp: str, out: str, x: Any, n: int) -> np.ndarray:
        import torch

        parts: list[np.ndarray] = []
        for start in range(0, n, self.max_batch):
            chunk = x[start : start + self.max_batch]
            try:
                parts.append(self._run_once(rt, inp, out, chunk))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    if isinstance(exc, EngineError):
                        raise
                    raise EngineError(
                        f"{self.name}: inference failed: {exc}".splitlines()[0], engine=self.name
                    ) from exc
                half = max(1, len(chunk) // 2)
                log.warning(
                    "%s: out of memory at batch %d; retrying once at batch %d", self.name, len(chunk), half
                )
                if self.device.startswith("cuda"):
                    torch.cuda.empty_cache()
                try:
                    for s in range(0, len(chunk), half):
                        parts.append(self._run_once(rt, inp, out, chunk[s : s + half]))
                except Exception as exc2:
                    raise EngineError(
                        f"{self.name}: out of memory even at batch {half} on {self.device} "
                        f"(lower engine.max_batch, or use precision fp16): {exc2}".splitlines()[0],
                        engine=self.name,
                    ) from exc2
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    def _run_once(self, rt: Runtime, inp: str, out: str, x: Any) -> np.ndarray:
        y = rt.run({inp: x}, as_torch=True)[out]
        import torch

        y = torch.as_tensor(y).float()
        y = torch.nn.functional.normalize(y, dim=-1)
        return np.ascontiguousarray(y.cpu().numpy(), dtype=np.float32)

    def preprocess(self, images: Sequence[ImageLike]) -> Any:
        """(N, 3, H, W) float32 tensor on the engine's device."""
        return self.preprocessor(as_images(images))

    def embed_images(self, images: Sequence[ImageLike]) -> np.ndarray:
        rt = self.image_rt
        if rt is None:
            raise EngineError(f"{self.name}: a text-only engine has no image tower", engine=self.name)
        arrays = as_images(images)
        if not arrays:
            return np.zeros((0, self.dim), np.float32)
        out: list[np.ndarray] = []
        # Preprocess per chunk so a huge call never materialises every tensor at once.
        step = self.max_batch * 4
        for s in range(0, len(arrays), step):
            x = self.preprocessor(arrays[s : s + step])
            out.append(self._run_chunked(rt, IMAGE_INPUT, IMAGE_OUTPUT, x, len(x)))
        return np.concatenate(out)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.text_rt is None:
            raise EngineError(
                f"{self.name}: no text tower (the ONNX export has no text.onnx beside image.onnx)",
                engine=self.name,
            )
        key = tuple(texts)
        with self._text_lock:
            hit = self._text_cache.get(key)
            if hit is not None:
                self._text_cache.move_to_end(key)
                return hit.copy()
        if not key:
            return np.zeros((0, self.dim), np.float32)
        tokens = self._tokenizer(list(key))
        emb = self._run_chunked(self.text_rt, TEXT_INPUT, TEXT_OUTPUT, tokens, len(key))
        with self._text_lock:
            self._text_cache[key] = emb
            if len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        return emb.copy()

    def label_embeddings(
        self, labels: Sequence[str], templates: Sequence[str] = ("a photo of {}.",)
    ) -> np.ndarray:
        """(L, dim): per label, the normalised mean of its normalised template embeddings."""
        if not labels or not templates:
            raise EngineError("classify needs at least one label and one template", engine=self.name)
        prompts = [t.format(lb) for lb in labels for t in templates]
        emb = self.embed_texts(prompts).reshape(len(labels), len(templates), self.dim).mean(axis=1)
        return (emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)).astype(np.float32)

    def classify(
        self,
        images: Sequence[ImageLike],
        labels: Sequence[str],
        templates: Sequence[str] = ("a photo of {}.",),
    ) -> np.ndarray:
        """(N, L) zero-shot probabilities: softmax of logit_scale × cosine similarity."""
        txt = self.label_embeddings(labels, templates)
        img = self.embed_images(images)
        logits = self.logit_scale * (img @ txt.T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    def close(self) -> None:
        for rt in (self.image_rt, self._text_rt):
            if rt is not None:
                rt.close()
        self._text_cache.clear()

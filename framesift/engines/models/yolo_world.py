"""YOLO-World v2 open-vocabulary detector: image batch **and** text embeddings are graph inputs.

Prompts → CLIP text embeddings (cached per prompt set) → detector graph → letterbox-aware decode +
class-aware NMS → ``sv.Detections`` whose ``data["class_name"]`` are the prompts. Changing prompts
changes only the text input; the engine is never rebuilt.

Two runtimes run the same graph: ONNX Runtime (an exported ``.onnx``, fp32) and PyTorch (a
``torch.export`` program, ``.pt2``, in the engine precision: bf16 on CPUs with AMX/AVX512-BF16 —
about twice the fp32 rate on an AVX512-BF16 core, more with AMX — fp16 on CUDA). Box decoding
stays fp32 in both.

The reference implementation (``ultralytics``, AGPL-3.0) is needed **only to export**: it is
imported inside :func:`build_reference` / :func:`load_reference` / the exporters, never on the
runtime path, which needs only ``onnxruntime`` or ``torch``, and a CLIP text tower.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from framesift.engines.base import ImageLike, as_images
from framesift.engines.detect import Detector, EngineCache, OnnxSession, export_key, hash_state_dict
from framesift.engines.models.detect_post import decode, letterbox
from framesift.engines.runtimes.base import Precision, TensorSpec
from framesift.engines.runtimes.torch_runtime import TorchRuntime
from framesift.errors import ConfigError, EngineError

log = logging.getLogger("framesift.engines.yolo_world")

VARIANTS = {v: f"yolov8{v}-worldv2.yaml" for v in ("s", "m", "l", "x")}
TEXT_DIM = 512
OPSET = 17
RUNTIMES = ("auto", "onnxruntime", "torch")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EXPORT_VERSION = 3  # 2: fp32 head decode; 3: head BN folded, oneDNN conv+SiLU on CPU. In the cache key

TextEncoder = Callable[[Sequence[str]], np.ndarray]


def _ultralytics() -> Any:
    try:
        import ultralytics
    except ModuleNotFoundError:
        raise EngineError(
            "exporting YOLO-World needs the optional 'ultralytics' package (AGPL-3.0): "
            "pip install ultralytics — or pass an already exported .onnx file",
            engine="yolo_world",
        ) from None
    return ultralytics


def build_reference(variant: str = "s", num_classes: int = 1) -> nn.Module:
    """The reference ``WorldModel`` of ``variant`` (s/m/l/x) with random weights (no hub here)."""
    _ultralytics()
    from ultralytics.nn.tasks import WorldModel

    if variant not in VARIANTS:
        raise ConfigError(f"unknown YOLO-World variant {variant!r} (available: {', '.join(VARIANTS)})")
    model = WorldModel(VARIANTS[variant], nc=num_classes, verbose=False)
    return model.eval()


def load_reference(path: str | Path) -> nn.Module:
    """A YOLO-World v2 checkpoint (``.pt``) through ultralytics' own loader."""
    _ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"YOLO-World checkpoint {p} not found: pass an existing .pt or .onnx path")
    model, _ = load_checkpoint(str(p), device="cpu", fuse=False)
    return model.float().eval()


class WorldExport(nn.Module):
    """Runs a reference ``WorldModel`` with text embeddings as an input of any class count.

    ``forward(images (B, 3, H, W) float [0, 1], text (K, D) L2-normalised) -> (B, 4 + K, A)``:
    xywh boxes in input pixels and per-class sigmoid scores — ultralytics' export output, except that
    the class count comes from ``text`` and the anchors from the input size (H, W multiples of 32)
    instead of being fixed in the graph.
    """

    def __init__(self, model: Any, imgsz: int) -> None:
        super().__init__()
        from ultralytics.nn.modules.block import C2fAttn, ImagePoolingAttn
        from ultralytics.nn.modules.head import WorldDetect

        self.model = model
        self.kinds = (C2fAttn, ImagePoolingAttn, WorldDetect)
        self.strides_list = [float(v) for v in model.model[-1].stride.tolist()]

    def _anchors(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Anchor centres (A, 2) and strides (A, 1) in fp32, built in-graph (any H, W) as
        ultralytics' ``make_anchors(feats, strides, 0.5)`` does, whatever the features' dtype."""
        points, strides = [], []
        for f, s in zip(feats, self.strides_list, strict=True):
            h, w = f.shape[2], f.shape[3]
            sx = torch.arange(w, device=f.device, dtype=torch.float32) + 0.5
            sy = torch.arange(h, device=f.device, dtype=torch.float32) + 0.5
            gy, gx = torch.meshgrid(sy, sx, indexing="ij")
            points.append(torch.stack((gx, gy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), s, device=f.device, dtype=torch.float32))
        return torch.cat(points), torch.cat(strides)

    def _head(self, head: Any, feats: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        """Boxes (DFL expectation + anchors) and sigmoid scores, decoded in fp32: in bf16, pixel
        coordinates above 256 would be rounded to 2-4 px."""
        anchors, strides = self._anchors(feats)
        boxes = torch.cat([head.cv2[i](feats[i]).flatten(2) for i in range(head.nl)], 2).float()
        scores = torch.cat([head.cv4[i](head.cv3[i](feats[i]), text).flatten(2) for i in range(head.nl)], 2)
        b, _, a = boxes.shape
        c1 = int(head.reg_max)
        if c1 > 1:  # DFL: expectation over c1 distance bins (ultralytics' DFL conv has weights arange(c1))
            bins = torch.arange(c1, device=boxes.device, dtype=torch.float32).view(1, 1, c1, 1)
            dist = (boxes.view(b, 4, c1, a).softmax(2) * bins).sum(2)
        else:
            dist = boxes.view(b, 4, a)
        lt, rb = dist.chunk(2, 1)
        anchor = anchors.transpose(0, 1).unsqueeze(0)
        x1y1, x2y2 = anchor - lt, anchor + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1)
        return torch.cat((dbox * strides.transpose(0, 1), scores.float().sigmoid()), 1)

    def forward(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        c2f_attn, pool_attn, world_detect = self.kinds
        model: Any = self.model
        txt = text.unsqueeze(0).expand(images.shape[0], -1, -1)
        ori = txt
        x: Any = images
        y: list[Any] = []
        for m in model.model:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            if isinstance(m, c2f_attn):
                x = m(x, txt)
            elif isinstance(m, world_detect):
                x = self._head(m, x, ori)
            elif isinstance(m, pool_attn):
                txt = m(x, txt)
            else:
                x = m(x)
            y.append(x if m.i in model.save else None)
        return x


def _fused(model: nn.Module, imgsz: int, *, onednn: bool = False) -> WorldExport:
    """A copy of ``model`` with Conv+BN fused (as ultralytics' own inference runs it), wrapped.

    Also folds each contrastive head's BatchNorm into the 1x1 convolution before it (exact in fp32;
    the text stays an input, so ultralytics' own head fusion, which bakes the classes in, cannot be
    used). With ``onednn`` (CPU programs), every convolution followed by SiLU becomes one oneDNN
    convolution with a swish post-op.
    """
    import copy

    from ultralytics.nn.modules.conv import Conv
    from ultralytics.nn.modules.head import BNContrastiveHead, WorldDetect
    from ultralytics.utils.torch_utils import fuse_conv_and_bn

    fused: Any = copy.deepcopy(model).eval()
    if hasattr(fused, "fuse"):
        fused = fused.fuse(verbose=False)
    heads: list[Any] = [m for m in fused.modules() if isinstance(m, WorldDetect)]
    for head in heads:
        for cv3, cv4 in zip(head.cv3, head.cv4, strict=True):
            if isinstance(cv4, BNContrastiveHead) and isinstance(cv4.norm, nn.BatchNorm2d):
                cv3[-1] = fuse_conv_and_bn(cv3[-1], cv4.norm)
                cv4.norm = nn.Identity()  # type: ignore[assignment]
    if onednn:
        from framesift.engines.runtimes.onednn import ConvSiLU

        convs: list[Any] = [m for m in fused.modules() if isinstance(m, Conv)]
        for m in convs:  # fused ultralytics Conv: forward is act(conv(x)), no bn left
            if not hasattr(m, "bn") and type(m.act) is nn.SiLU:
                m.conv, m.act = ConvSiLU(m.conv), nn.Identity()
    return WorldExport(fused, imgsz).eval()


def export_onnx(model: nn.Module, path: str | Path, imgsz: int = 640, opset: int = OPSET) -> Path:
    """Export ``model`` (a reference ``WorldModel``) to ONNX with dynamic batch, size and class count.

    A fused copy is exported: ONNX Runtime on CPU runs the fused graph several times faster.
    """
    import warnings

    wrapper = _fused(model, imgsz)
    images = torch.zeros(1, 3, imgsz, imgsz)
    text = torch.nn.functional.normalize(torch.randn(2, TEXT_DIM), dim=-1)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (images, text),
            str(path),
            input_names=["images", "text"],
            output_names=["output"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"},
                "text": {0: "classes"},
                "output": {0: "batch", 1: "channels", 2: "anchors"},
            },
            opset_version=opset,
            dynamo=False,
        )
    return Path(path)


def export_program(
    model: nn.Module,
    path: str | Path,
    imgsz: int = 640,
    *,
    precision: Precision = "fp32",
    device: str = "cpu",
) -> Path:
    """Export ``model`` with ``torch.export`` (dynamic batch, H, W and class count) in ``precision``
    on ``device`` and save it as a ``.pt2`` program, which loads without ultralytics.

    Weights are cast to ``precision`` and, on the CPU, stored channels-last (oneDNN's fast layout),
    with convolution + SiLU fused into one oneDNN op where PyTorch has oneDNN.
    """
    import warnings

    from torch.export import Dim

    from framesift.engines.runtimes.onednn import onednn_available
    from framesift.engines.runtimes.torch_runtime import torch_dtype

    dtype = torch_dtype(precision)
    onednn = device == "cpu" and onednn_available()
    wrapper = _fused(model, imgsz, onednn=onednn).to(device=device, dtype=dtype)
    layout = torch.channels_last if device == "cpu" else torch.contiguous_format
    wrapper = wrapper.to(memory_format=layout)
    images = torch.zeros(2, 3, imgsz, imgsz, device=device, dtype=dtype).contiguous(memory_format=layout)
    text = torch.nn.functional.normalize(torch.randn(3, TEXT_DIM), dim=-1).to(device=device, dtype=dtype)
    side = Dim("side32", min=2, max=256)
    dims = {
        "images": {0: Dim("batch", min=1, max=4096), 2: 32 * side, 3: 32 * Dim("w32", min=2, max=256)},
        "text": {0: Dim("classes", min=1, max=4096)},
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(wrapper, (images, text), dynamic_shapes=dims, strict=False)
        torch.export.save(program, str(path))
    return Path(path)


def load_program(path: str | Path) -> Any:
    """The callable module of a ``.pt2`` saved by :func:`export_program` (no ultralytics needed)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No complete tensor found in the group" (harmless on load)
            return torch.export.load(str(path)).module()
    except Exception as exc:
        raise EngineError(
            f"cannot load YOLO-World program {Path(path).name}: {exc}; re-export it with this torch "
            f"({torch.__version__}) or pass the .pt checkpoint",
            engine="yolo_world",
        ) from exc


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime runs the detector graph, where, in what precision, and why."""

    runtime: str  # "onnxruntime" | "torch"
    device: str
    precision: Precision
    why: str


def choose_runtime(runtime: str, device: str, precision: str, source_kind: str) -> RuntimeChoice:
    """Resolve ``auto`` runtime/device/precision for a detector source (``onnx``, ``pt2``, ``export``).

    ``auto`` → PyTorch in fp16 on CUDA; PyTorch in bf16 on CPUs with native bf16 (AMX/AVX512-BF16);
    else ONNX Runtime in fp32 (on CUDA when its CUDA provider is installed). An ``.onnx`` source runs on
    ONNX Runtime, a ``.pt2`` on PyTorch.
    """
    from framesift.engines.factory import cpu_bf16_kind

    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown detector runtime {runtime!r} (choose one of: {', '.join(RUNTIMES)})")
    if precision not in PRECISIONS:
        raise ConfigError(
            f"unknown detector precision {precision!r} (choose one of: {', '.join(PRECISIONS)})"
        )
    fixed = {"onnx": "onnxruntime", "pt2": "torch"}.get(source_kind)
    if fixed and runtime not in ("auto", fixed):
        raise ConfigError(
            f"a .{source_kind} detector model runs on runtime {fixed}, not {runtime}: set runtime: {fixed}, "
            "or pass the .pt checkpoint so framesift exports it for the runtime you want"
        )
    cuda = torch.cuda.is_available()
    bf16 = cpu_bf16_kind()
    if device == "cuda" and not cuda and runtime != "onnxruntime":
        raise ConfigError("device cuda asked for but torch sees no CUDA GPU: use device: cpu or auto")
    why = "asked for"
    if runtime == "auto":
        runtime = fixed or ""
        if not runtime:
            if device in ("auto", "cuda") and cuda:
                runtime, why = "torch", "CUDA GPU present"
            elif device in ("auto", "cpu") and bf16 and precision in ("auto", "bf16"):
                runtime, why = "torch", f"this CPU has native bf16 ({bf16})"
            else:
                runtime, why = "onnxruntime", "no GPU and no native-bf16 CPU"
        else:
            why = f"a .{source_kind} model"
    if runtime == "onnxruntime":
        from framesift.engines.detect import resolve_device

        dev = resolve_device(device)
        if precision not in ("auto", "fp32"):
            raise ConfigError(
                f"the ONNX Runtime detector runs in fp32, not {precision}: set precision: fp32 (or auto), "
                "or runtime: torch"
            )
        return RuntimeChoice("onnxruntime", dev, "fp32", why)
    dev = "cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu"
    if precision == "auto":
        prec: Precision = "fp16" if dev == "cuda" else ("bf16" if bf16 else "fp32")
    else:
        prec = precision  # type: ignore[assignment]
    if prec == "fp16" and dev == "cpu":
        raise ConfigError("fp16 detector on the CPU is not supported: use precision bf16 or fp32 there")
    return RuntimeChoice("torch", dev, prec, why)


class ClipTextEncoder:
    """CLIP ViT-B/32 text tower (what YOLO-World v2 was trained with) → L2-normalised (K, 512).

    ``pretrained`` is an open_clip tag (``openai``), a local checkpoint path, or None for random
    weights (tests, benchmarks). Uses open_clip directly until the shared CLIP engine exposes a
    text-only entry point.
    """

    def __init__(
        self, model: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "cpu"
    ) -> None:
        import open_clip

        try:
            clip, _, _ = open_clip.create_model_and_transforms(model, pretrained=pretrained, device=device)
        except Exception as exc:
            raise EngineError(
                f"cannot load CLIP text tower {model!r} (pretrained={pretrained!r}): {exc}; pass a local "
                "checkpoint path as pretrained",
                engine="clip",
            ) from exc
        self.model = clip.eval()
        self.tokenizer = open_clip.get_tokenizer(model)
        self.device = device

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with torch.no_grad():
            feats = self.model.encode_text(self.tokenizer(list(texts)).to(self.device))
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)


class YoloWorld(Detector):
    """YOLO-World v2 with run-time prompts, on ONNX Runtime or PyTorch (see :func:`choose_runtime`).

    ``source``: an exported ``.onnx`` (ONNX Runtime) or ``.pt2`` (PyTorch) file; a ``.pt`` checkpoint
    or an ``nn.Module`` (exported once for the chosen runtime through the engine cache, needs
    ultralytics); or a variant letter ``s/m/l/x`` (random weights: for benchmarks and tests only — no
    weights can be downloaded here).
    """

    name = "yolo_world"

    def __init__(
        self,
        source: str | Path | nn.Module = "s",
        *,
        text_encoder: TextEncoder | None = None,
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
    ) -> None:
        if imgsz % 32:
            raise ConfigError(f"YOLO-World imgsz must be a multiple of 32, got {imgsz}")
        self.imgsz, self.conf, self.iou, self.max_det = imgsz, conf, iou, max_det
        self.max_batch = max_batch
        self.rect = rect
        self.cache = cache or EngineCache()
        model, kind = self._source(source)
        program = None
        if kind == "pt2":  # the program fixes its precision and device (CPU programs hold oneDNN ops)
            program = load_program(model)  # type: ignore[arg-type]
            params = [t for t in program.parameters() if t.is_floating_point()]
            dtypes = {str(t.dtype) for t in params}
            own = {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(min(dtypes, default=""), "fp32")
            own_device = "cuda" if any(t.is_cuda for t in params) else "cpu"
            name = Path(str(source)).name
            if precision not in ("auto", own):
                raise ConfigError(
                    f"{name} was exported in {own}, not {precision}: set precision: {own} "
                    "(or auto), or pass the .pt checkpoint to export it again"
                )
            if device not in ("auto", own_device):
                raise ConfigError(
                    f"{name} was exported for {own_device}, not {device}: set device: {own_device} "
                    "(or auto), or pass the .pt checkpoint to export it again"
                )
            precision, device = own, own_device
        self.choice = choose_runtime(runtime, device, precision, kind)
        c = self.choice
        log.info("YOLO-World runtime %s on %s, %s (%s)", c.runtime, c.device, c.precision, c.why)
        self.session: OnnxSession | None = None
        self.program: TorchRuntime | None = None
        if c.runtime == "onnxruntime":
            self.model_path = model if isinstance(model, Path) else self._export_cached(model, kind, None)
            self.session = OnnxSession(self.model_path, device=c.device, threads=threads)
            self.torch_device = "cuda" if "CUDAExecutionProvider" in self.session.providers else "cpu"
        else:
            self.model_path = model if isinstance(model, Path) else self._export_cached(model, kind, c)
            self.torch_device = c.device
            self.program = TorchRuntime(
                program if program is not None else load_program(self.model_path),
                [
                    TensorSpec("images", c.precision, ("batch", 3, "h", "w")),
                    TensorSpec("text", c.precision, ("k", 512)),
                ],
                [TensorSpec("output", "fp32", ("batch", "4+k", "anchors"))],
                device=c.device,
                precision=c.precision,
                channels_last=c.device == "cpu",
                threads=threads,
            )
        self._text_encoder = text_encoder
        self._text_cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.Lock()
        self.prompts: tuple[str, ...] = ()
        if prompts is not None:
            self.set_prompts(prompts)

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
        path = Path(text)
        if not path.exists():
            raise ConfigError(
                f"YOLO-World model {text!r} not found: pass an exported .onnx or .pt2, a .pt checkpoint, "
                f"or a variant ({', '.join(VARIANTS)}) for random weights"
            )
        if path.suffix in (".onnx", ".pt2"):
            return path, path.suffix[1:]
        return load_reference(path), path.name

    def _export_cached(self, model: nn.Module, label: str, choice: RuntimeChoice | None) -> Path:
        """The cached ONNX (``choice`` None) or ``.pt2`` program of ``model``, exported on a miss."""
        profile = {"trace_imgsz": self.imgsz, "batch": "dynamic", "hw": "dynamic", "classes": "dynamic"}
        weights = hash_state_dict(model.state_dict())
        if choice is None:
            key = export_key(
                f"yolo_world_v2/{label}",
                weights,
                profile,
                opset=OPSET,
                inputs="images,text",
                fused=True,
                export_version=EXPORT_VERSION,
            )

            def build_onnx(tmp: Path) -> None:
                export_onnx(model, tmp, self.imgsz)

            return self.cache.get_or_build(key, "yolo_world.onnx", build_onnx)
        from framesift.engines.cache import EngineKey, device_descriptor

        key = EngineKey(
            model=f"yolo_world_v2/{label}",
            weights_hash=weights,
            runtime="torch-export",
            runtime_version=f"torch-{torch.__version__}",
            device=device_descriptor(choice.device),
            precision=choice.precision,
            shape_profile=profile,
            export={"inputs": "images,text", "fused": True, "export_version": EXPORT_VERSION},
        )

        def build(tmp: Path) -> None:
            export_program(model, tmp, self.imgsz, precision=choice.precision, device=choice.device)

        return self.cache.get_or_build(key, "yolo_world.pt2", build)

    @property
    def text_encoder(self) -> TextEncoder:
        if self._text_encoder is None:
            self._text_encoder = ClipTextEncoder()
        return self._text_encoder

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
        import supervision as sv

        if prompts is not None:
            self.set_prompts(prompts)
        if not self.prompts:
            raise ConfigError("no prompts set: pass at least one text prompt (--prompt forklift)")
        names = np.array(self.prompts)
        text = self.text_embeddings(self.prompts)
        frames = as_images(images)
        out: list[Any] = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start : start + self.max_batch]
            batch, infos = letterbox(chunk, self.imgsz, self.torch_device, rect=self.rect)
            raw = self._raw(batch, text)
            for det in decode(raw, infos, conf=self.conf, iou=self.iou, max_det=self.max_det):
                d = det.cpu().numpy()
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

"""YOLO-World v2 open-vocabulary detector: image batch **and** text embeddings are graph inputs.

Prompts → CLIP text embeddings (cached per prompt set) → ONNX detector → letterbox-aware decode +
class-aware NMS → ``sv.Detections`` whose ``data["class_name"]`` are the prompts. Changing prompts
changes only the text input; the engine is never rebuilt.

The reference implementation (``ultralytics``, AGPL-3.0) is needed **only to export**: it is
imported inside :func:`build_reference` / :func:`load_reference` / :func:`export_onnx`, never on the
runtime path, which needs only ``onnxruntime``, ``torch`` (post-processing) and a CLIP text tower.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from framesift.engines.base import ImageLike, as_images
from framesift.engines.detect import Detector, EngineCache, OnnxSession, export_key, hash_state_dict
from framesift.engines.models.detect_post import decode, letterbox
from framesift.errors import ConfigError, EngineError

log = logging.getLogger("framesift.engines.yolo_world")

VARIANTS = {v: f"yolov8{v}-worldv2.yaml" for v in ("s", "m", "l", "x")}
TEXT_DIM = 512
OPSET = 17

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
        from ultralytics.utils.tal import make_anchors

        self.model = model
        self.kinds = (C2fAttn, ImagePoolingAttn, WorldDetect)
        self.strides_list = [float(v) for v in model.model[-1].stride.tolist()]
        self.make_anchors = make_anchors

    def _head(self, head: Any, feats: list[torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        from ultralytics.utils.tal import dist2bbox

        anchors, strides = self.make_anchors(feats, self.strides_list, 0.5)  # in-graph: any H, W
        boxes = torch.cat([head.cv2[i](feats[i]).flatten(2) for i in range(head.nl)], 2)
        scores = torch.cat([head.cv4[i](head.cv3[i](feats[i]), text).flatten(2) for i in range(head.nl)], 2)
        dbox = dist2bbox(head.dfl(boxes), anchors.transpose(0, 1).unsqueeze(0), xywh=True, dim=1)
        return torch.cat((dbox * strides.transpose(0, 1), scores.sigmoid()), 1)

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


def export_onnx(model: nn.Module, path: str | Path, imgsz: int = 640, opset: int = OPSET) -> Path:
    """Export ``model`` (a reference ``WorldModel``) to ONNX with dynamic batch and class count.

    A copy is fused first (Conv+BN, as ultralytics' own inference does): ONNX Runtime on CPU runs
    the fused graph several times faster.
    """
    import copy
    import warnings

    fused: Any = copy.deepcopy(model).eval()
    if hasattr(fused, "fuse"):
        fused = fused.fuse(verbose=False)
    wrapper = WorldExport(fused, imgsz).eval()
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
    """YOLO-World v2 on ONNX Runtime with run-time prompts.

    ``source``: an exported ``.onnx`` file; a ``.pt`` checkpoint or an ``nn.Module`` (exported once
    through the engine cache, needs ultralytics); or a variant letter ``s/m/l/x`` (random weights:
    for benchmarks and tests only — no weights can be downloaded here).
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
        self.onnx_path = self._resolve(source)
        self.session = OnnxSession(self.onnx_path, device=device, threads=threads)
        self.torch_device = "cuda" if "CUDAExecutionProvider" in self.session.providers else "cpu"
        self._text_encoder = text_encoder
        self._text_cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.Lock()
        self.prompts: tuple[str, ...] = ()
        if prompts is not None:
            self.set_prompts(prompts)

    def _resolve(self, source: str | Path | nn.Module) -> Path:
        if isinstance(source, nn.Module):
            return self._export_cached(source, "module")
        text = str(source)
        if text in VARIANTS:
            log.warning("YOLO-World %s with RANDOM weights (benchmark/test only)", VARIANTS[text])
            torch.manual_seed(0)
            return self._export_cached(build_reference(text), f"random-{text}")
        path = Path(text)
        if not path.exists():
            raise ConfigError(
                f"YOLO-World model {text!r} not found: pass an exported .onnx, a .pt checkpoint, "
                f"or a variant ({', '.join(VARIANTS)}) for random weights"
            )
        if path.suffix == ".onnx":
            return path
        return self._export_cached(load_reference(path), path.name)

    def _export_cached(self, model: nn.Module, label: str) -> Path:
        key = export_key(
            f"yolo_world_v2/{label}",
            hash_state_dict(model.state_dict()),
            {"trace_imgsz": self.imgsz, "batch": "dynamic", "hw": "dynamic", "classes": "dynamic"},
            opset=OPSET,
            inputs="images,text",
            fused=True,
        )

        def build(tmp: Path) -> None:
            export_onnx(model, tmp, self.imgsz)

        return self.cache.get_or_build(key, "yolo_world.onnx", build)

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
        """Run the graph on a letterboxed batch → (B, 4 + K, A)."""
        images = batch.detach().cpu().numpy() if batch.device.type != "cpu" else batch.numpy()
        return self.session.run({"images": np.ascontiguousarray(images), "text": text})[0]

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
            raw = torch.from_numpy(self.raw(batch, text)).to(self.torch_device)
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

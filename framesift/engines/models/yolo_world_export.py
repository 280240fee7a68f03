"""YOLO-World v2's export graph: the reference model (``ultralytics``, AGPL-3.0, imported only
here and only to export) wrapped so that text embeddings are an input, fused for inference, and
exported to ONNX or a ``torch.export`` program (``.pt2``) through the engine cache.

``forward(images, text) -> (B, 4 + K, A)``: boxes decoded in fp32 in-graph, any batch, size (multiples
of 32) and class count. The runtime path loads the exported files and never imports ultralytics.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from framesift.engines.cache import EngineCache, device_descriptor
from framesift.engines.export import export_key, weights_hash
from framesift.engines.export import export_onnx as export_graph
from framesift.engines.plan import EnginePlan
from framesift.engines.runtimes.base import Precision
from framesift.engines.weights import file_format, not_a_checkpoint
from framesift.errors import ConfigError, EngineError

VARIANTS = {v: f"yolov8{v}-worldv2.yaml" for v in ("s", "m", "l", "x")}
TEXT_DIM = 512
OPSET = 17
EXPORT_VERSION = 3  # 2: fp32 head decode; 3: head BN folded, oneDNN conv+SiLU on CPU. In the cache key


def _ultralytics() -> Any:
    try:
        import ultralytics
    except ModuleNotFoundError:
        raise EngineError(
            "exporting YOLO-World needs the optional 'ultralytics' package (AGPL-3.0): "
            "pip install --no-deps ultralytics==8.4.190 (its metadata would replace torch and the "
            "headless OpenCV; see the README's offline recipe) — or pass an exported .onnx/.pt2 file",
            engine="yolo_world",
        ) from None
    from framesift.log import adopt_logger

    adopt_logger("ultralytics")  # its lines in framesift's format (and level), not its own
    return ultralytics


def build_reference(variant: str = "s", num_classes: int = 1) -> nn.Module:
    """The reference ``WorldModel`` of ``variant`` (s/m/l/x) with random weights (no hub here)."""
    _ultralytics()
    from ultralytics.nn.tasks import WorldModel

    if variant not in VARIANTS:
        raise ConfigError(f"unknown YOLO-World variant {variant!r} (available: {', '.join(VARIANTS)})")
    model = WorldModel(VARIANTS[variant], nc=num_classes, verbose=False)
    return model.eval()


MODEL_SUFFIXES = {".onnx": "onnx", ".pt2": "torch", ".pt": "torch"}  # suffix → file_format
MODEL_FIX = "pass an exported .onnx or .pt2, an ultralytics .pt checkpoint, or s/m/l/x for random weights"


def check_model_file(model: str | Path, option: str = "YOLO-World model") -> Path:
    """``model`` (a file the detector loads, named by ``option`` in errors) as a Path; ConfigError,
    one line, where it is missing, has a suffix no loader takes (ultralytics reads ``.pt`` only,
    ONNX Runtime ``.onnx``, ``torch.export`` ``.pt2``) or its bytes are not of that kind."""
    p = Path(model)
    if not p.exists():
        raise ConfigError(f"{option} {model!s}: no such file; {MODEL_FIX}")
    kinds = ", ".join(MODEL_SUFFIXES)
    if p.suffix.lower() not in MODEL_SUFFIXES or p.is_dir():
        raise ConfigError(f"{option} {model!s}: not a YOLO-World model ({kinds}); {MODEL_FIX}")
    try:
        found = file_format(p)
    except OSError as exc:
        raise ConfigError(f"{option} {model!s}: cannot read it ({exc.strerror or exc})") from None
    want = MODEL_SUFFIXES[p.suffix.lower()]
    if found != want and not (want == "torch" and found == "pickle"):
        raise ConfigError(
            f"{option} {model!s}: not a YOLO-World model (its bytes are not a {p.suffix} file); {MODEL_FIX}"
        )
    return p


def load_reference(path: str | Path) -> nn.Module:
    """A YOLO-World v2 checkpoint (``.pt``) through ultralytics' own loader; a file it cannot load is
    a ConfigError (one line)."""
    p = check_model_file(path, "YOLO-World checkpoint")
    _ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, _ = load_checkpoint(str(p), device="cpu", fuse=False)
        return model.float().eval()
    except Exception as exc:
        raise not_a_checkpoint(p, "YOLO-World", exc, fix=MODEL_FIX) from None


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

    A fused copy is exported: ONNX Runtime on CPU runs the fused graph several times faster. The
    legacy exporter is used (the anchors depend on H and W, which torch.export would constrain).
    """
    images = torch.zeros(1, 3, imgsz, imgsz)
    text = torch.nn.functional.normalize(torch.randn(2, TEXT_DIM), dim=-1)
    export_graph(
        _fused(model, imgsz),
        (images, text),
        path,
        input_names=["images", "text"],
        output_names=["output"],
        dynamic_axes={
            "images": {0: "batch", 2: "height", 3: "width"},
            "text": {0: "classes"},
            "output": {0: "batch", 1: "channels", 2: "anchors"},
        },
        opset=opset,
        exporter="legacy",
        fallback=False,
        label="YOLO-World",
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


def export_cached(
    model: nn.Module, label: str, imgsz: int, cache: EngineCache, plan: EnginePlan | None = None
) -> Path:
    """The cached ONNX file (``plan`` None) or ``.pt2`` program (in the plan's precision, for its
    device) of ``model``, exported on a miss; ``label`` names the weights' source in the key."""
    profile = {"trace_imgsz": imgsz, "batch": "dynamic", "hw": "dynamic", "classes": "dynamic"}
    weights = weights_hash(model)
    options: dict[str, Any] = {"inputs": "images,text", "fused": True, "export_version": EXPORT_VERSION}
    if plan is None:
        key = export_key(f"yolo_world_v2/{label}", weights, shape_profile=profile, opset=OPSET, **options)

        def build_onnx(tmp: Path) -> None:
            export_onnx(model, tmp, imgsz)

        return cache.get_or_build(key, "yolo_world.onnx", build_onnx)
    key = export_key(
        f"yolo_world_v2/{label}",
        weights,
        shape_profile=profile,
        producer="torch-export",
        device=device_descriptor(plan.device),
        precision=plan.precision,
        **options,
    )

    def build(tmp: Path) -> None:
        export_program(model, tmp, imgsz, precision=plan.precision, device=plan.device)

    return cache.get_or_build(key, "yolo_world.pt2", build)

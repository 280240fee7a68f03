"""CLIP (open_clip) as an :class:`Embedder` on any runtime.

A model comes from an open_clip name + pretrained tag (downloaded by open_clip where a hub is
reachable), a local checkpoint, or an exported ONNX file (self-describing: framesift writes the
preprocessing, logit scale and dimension into its metadata). The image and text towers are exported
to ONNX with a dynamic batch axis, cached (see :mod:`framesift.engines.cache`) and run by the selected
runtime; preprocessing runs batched on the engine's device (:mod:`.clip_preprocess`).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import io
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framesift.engines.base import Embedder, ImageLike, as_images
from framesift.engines.cache import EngineCache, EngineKey, device_descriptor, file_sha256
from framesift.engines.models.clip_preprocess import ClipPreprocessor, PreprocessCfg
from framesift.engines.runtimes import Precision, Runtime, TensorSpec, select_runtime
from framesift.errors import EngineError

log = logging.getLogger("framesift.engines.clip")

IMAGE_INPUT, IMAGE_OUTPUT = "image", "image_embeds"
TEXT_INPUT, TEXT_OUTPUT = "text", "text_embeds"
ONNX_OPSET = 18
ONNX_INLINE_LIMIT = 1_800_000_000  # bytes; larger graphs keep weights in <file>.data
META_PREFIX = "framesift."
TEXT_CACHE_SIZE = 64
TRT_MAX_BATCH = 512


# --------------------------------------------------------------------------- model resolution


def list_clip_models() -> list[str]:
    import open_clip

    return list(open_clip.list_models())


def check_model_name(name: str) -> None:
    """EngineError listing close matches when ``name`` is not an open_clip architecture."""
    import open_clip

    if open_clip.get_model_config(name.replace("/", "-")) is not None:
        return
    models = list_clip_models()
    close = difflib.get_close_matches(name, models, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {', '.join(models[:5])}"
    raise EngineError(
        f"unknown CLIP model {name!r}: {hint} (all {len(models)} names: python -c "
        "'import open_clip; print(open_clip.list_models())')",
        engine="clip",
    )


def cached_pretrained_path(model: str, tag: str, cache_dir: str | None = None) -> str | None:
    """Local path of open_clip's weights for (model, tag) when already downloaded, else None.

    Looks in the Hugging Face hub cache and open_clip's URL cache; never touches the network.
    """
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        return None
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return str(cfg["file"])
    hub = cfg.get("hf_hub") or ""
    if hub:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return _url_cached(cfg, cache_dir)
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else []
        if filename.endswith(".bin"):
            names.insert(0, filename[: -len(".bin")] + ".safetensors")
        names += ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        for n in names:
            found = try_to_load_from_cache(repo, n, cache_dir=cache_dir)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    return _url_cached(cfg, cache_dir)


def _url_cached(cfg: dict[str, Any], cache_dir: str | None) -> str | None:
    url = cfg.get("url") or ""
    if url:
        p = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if p.is_file():
            return str(p)
    return None


def _check_tag(model: str, tag: str) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise EngineError(
            f"unknown pretrained tag {tag!r} for CLIP model {model!r} "
            f"(available: {', '.join(tags) or 'none; use a local checkpoint'})",
            engine="clip",
        )
    return dict(cfg)


def load_open_clip(
    model: str, *, pretrained: str | None = None, checkpoint: str | None = None, offline: bool = False
) -> tuple[Any, PreprocessCfg]:
    """Build the open_clip model (eval, fp32, CPU) and its preprocessing config.

    ``pretrained`` is a tag (weights from open_clip's cache or, unless ``offline``, its download);
    ``checkpoint`` a local ``.pt``/``.bin``/``.safetensors`` file; neither → random weights (tests).
    """
    import open_clip

    check_model_name(model)
    name = model.replace("/", "-")
    force_qg = False
    weights: str | None = None
    pre_over: dict[str, Any] = {}
    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            raise EngineError(
                f"CLIP checkpoint not found: {checkpoint} (give an existing .pt/.bin/.safetensors file, "
                "or set pretrained: TAG to let open_clip download weights)",
                engine="clip",
            )
        weights = checkpoint
    elif pretrained:
        tag_cfg = _check_tag(name, pretrained)
        force_qg = bool(tag_cfg.get("quick_gelu", False))
        pre_over = {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg}
        weights = cached_pretrained_path(name, pretrained)
        offline = offline or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if weights is None and offline:
            raise EngineError(
                f"CLIP weights {name}/{pretrained} are not in the local cache and downloads are off "
                "(HF_HUB_OFFLINE); download them once where the hub is reachable, or give a checkpoint path",
                engine="clip",
            )
        if weights is None:
            weights = pretrained  # let open_clip download it
    try:
        net = open_clip.create_model(
            name,
            pretrained=weights,
            force_quick_gelu=force_qg,
            force_preprocess_cfg=pre_over or None,
        )
    except Exception as exc:
        what = f"checkpoint {checkpoint}" if checkpoint else f"pretrained {name}/{pretrained}"
        hint = (
            "" if checkpoint else " (no network? give a local checkpoint path; HF_HUB_OFFLINE=1 fails fast)"
        )
        raise EngineError(f"cannot load CLIP {what}: {exc}".splitlines()[0] + hint, engine="clip") from exc
    net = net.eval()
    cfg = PreprocessCfg.from_open_clip(open_clip.get_model_preprocess_cfg(net))
    return net, cfg


def weights_hash(module: Any) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes) of ``module``."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- export


def _towers(model: Any) -> tuple[Any, Any]:
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            return self.m.encode_image(image)

    class TextTower(torch.nn.Module):
        def __init__(self, m: Any) -> None:
            super().__init__()
            self.m = m

        def forward(self, text: torch.Tensor) -> torch.Tensor:
            return self.m.encode_text(text)

    return ImageTower(model).eval(), TextTower(model).eval()


@dataclass(frozen=True)
class ClipInfo:
    """What a runtime needs besides the graph: written into ONNX metadata on export."""

    model: str
    pretrained: str
    embed_dim: int
    logit_scale: float
    context_length: int
    preprocess: PreprocessCfg
    weights_hash: str

    def metadata(self, kind: str) -> dict[str, str]:
        return {
            f"{META_PREFIX}kind": kind,
            f"{META_PREFIX}model": self.model,
            f"{META_PREFIX}pretrained": self.pretrained,
            f"{META_PREFIX}embed_dim": str(self.embed_dim),
            f"{META_PREFIX}logit_scale": repr(self.logit_scale),
            f"{META_PREFIX}context_length": str(self.context_length),
            f"{META_PREFIX}preprocess": json.dumps(self.preprocess.as_dict()),
            f"{META_PREFIX}weights_hash": self.weights_hash,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, str], where: str) -> ClipInfo:
        try:
            return cls(
                model=meta[f"{META_PREFIX}model"],
                pretrained=meta.get(f"{META_PREFIX}pretrained", ""),
                embed_dim=int(meta[f"{META_PREFIX}embed_dim"]),
                logit_scale=float(meta[f"{META_PREFIX}logit_scale"]),
                context_length=int(meta[f"{META_PREFIX}context_length"]),
                preprocess=PreprocessCfg.from_open_clip(json.loads(meta[f"{META_PREFIX}preprocess"])),
                weights_hash=meta.get(f"{META_PREFIX}weights_hash", ""),
            )
        except (KeyError, ValueError) as exc:
            raise EngineError(
                f"{where}: not a framesift CLIP export (metadata {exc} missing or invalid); "
                "export one with: framesift export clip --model NAME --runtime onnxruntime --out DIR",
                engine="clip",
            ) from None


def model_info(model: Any, name: str, pretrained: str, pre: PreprocessCfg, whash: str) -> ClipInfo:
    import torch

    with torch.no_grad():
        scale = float(model.logit_scale.exp().item()) if hasattr(model, "logit_scale") else 100.0
    dim = int(getattr(model.visual, "output_dim", 0) or model.text_projection.shape[1])
    ctx = int(getattr(model, "context_length", 77))
    return ClipInfo(name, pretrained, dim, scale, ctx, pre, whash)


def export_onnx(
    tower: Any,
    example: Any,
    path: Path,
    *,
    input_name: str,
    output_name: str,
    metadata: dict[str, str],
    exporter: str = "dynamo",
    opset: int = ONNX_OPSET,
) -> str:
    """Export ``tower`` with a dynamic batch axis; returns the exporter that succeeded.

    ``dynamo`` (torch.export → ONNX, the maintained path in torch 2.x) is tried first; the legacy
    TorchScript exporter is the fallback.
    """
    import onnx
    import torch

    errors = []
    order = [exporter] + [e for e in ("dynamo", "legacy") if e != exporter]
    for kind in order:
        chatter = io.StringIO()  # the dynamo exporter prints progress lines on stdout
        try:
            common: dict[str, Any] = dict(
                input_names=[input_name], output_names=[output_name], opset_version=opset
            )
            with torch.no_grad(), contextlib.redirect_stdout(chatter), _no_tqdm_monitor():
                if kind == "dynamo":
                    batch = torch.export.Dim("batch", min=1, max=65536)
                    torch.onnx.export(
                        tower,
                        (example,),
                        str(path),
                        dynamo=True,
                        dynamic_shapes={input_name: {0: batch}},
                        verbose=False,
                        **common,
                    )
                else:
                    import warnings

                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        torch.onnx.export(
                            tower,
                            (example,),
                            str(path),
                            dynamo=False,
                            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                            **common,
                        )
        except Exception as exc:
            errors.append(f"{kind}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            log.warning("ONNX export with the %s exporter failed (%s); trying the next", kind, errors[-1])
            continue
        m = onnx.load(str(path))  # pulls in any external data the exporter wrote
        for k, v in metadata.items():
            entry = m.metadata_props.add()
            entry.key, entry.value = k, v
        for stray in path.parent.iterdir():  # the exporter's external-data files
            if stray != path and stray.name.startswith(path.name):
                stray.unlink()
        big = m.ByteSize() > ONNX_INLINE_LIMIT
        onnx.save(
            m,
            str(path),
            save_as_external_data=big,
            all_tensors_to_one_file=True,
            location=f"{path.name}.data",
        )
        return kind
    raise EngineError(
        f"ONNX export of {metadata.get(META_PREFIX + 'model')} failed: {'; '.join(errors)}", engine="clip"
    )


@contextlib.contextmanager
def _no_tqdm_monitor() -> Iterator[None]:
    """The exporter saves weights with tqdm progress bars; keep tqdm from starting its (never
    stopped) monitor thread. ``monitor_interval = 0`` is tqdm's documented switch."""
    try:
        from tqdm import tqdm
    except ImportError:
        yield
        return
    old = tqdm.monitor_interval
    tqdm.monitor_interval = 0
    try:
        yield
    finally:
        tqdm.monitor_interval = old


def read_onnx_metadata(path: Path) -> tuple[dict[str, str], list[Any], list[Any]]:
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise EngineError(
            f"{path}: not a readable ONNX file ({exc})".splitlines()[0], engine="clip"
        ) from None
    meta = {p.key: p.value for p in m.metadata_props}
    return meta, list(m.graph.input), list(m.graph.output)


def _dims(value_info: Any) -> list[int | str]:
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value_info.type.tensor_type.shape.dim
    ]


def validate_onnx(path: Path, kind: str, expect_dim: int | None = None) -> ClipInfo:
    """Check that ``path`` is a framesift CLIP ``kind`` ('image' | 'text') tower; EngineError otherwise."""
    meta, inputs, outputs = read_onnx_metadata(path)
    want_in, want_out = (IMAGE_INPUT, IMAGE_OUTPUT) if kind == "image" else (TEXT_INPUT, TEXT_OUTPUT)
    got_in = {i.name: _dims(i) for i in inputs}
    got_out = {o.name: _dims(o) for o in outputs}
    expected = (
        f"expected input {want_in!r} "
        + ("(batch, 3, H, W)" if kind == "image" else "(batch, context_length) int64")
        + f" and output {want_out!r} (batch, dim)"
    )
    if list(got_in) != [want_in] or list(got_out) != [want_out]:
        raise EngineError(
            f"{path}: mismatched CLIP {kind} ONNX: has inputs {got_in} and outputs {got_out}; {expected}",
            engine="clip",
        )
    info = ClipInfo.from_metadata(meta, str(path))
    dims_in, dims_out = got_in[want_in], got_out[want_out]
    ok_in = len(dims_in) == 4 and dims_in[1] == 3 if kind == "image" else len(dims_in) == 2
    if kind == "image" and ok_in and tuple(dims_in[2:]) != tuple(info.preprocess.size):
        ok_in = False
    if not ok_in or len(dims_out) != 2 or dims_out[1] != info.embed_dim:
        raise EngineError(
            f"{path}: mismatched CLIP {kind} ONNX: input {want_in} {dims_in}, output {want_out} {dims_out}, "
            f"metadata embed_dim {info.embed_dim} image size {list(info.preprocess.size)}; {expected}",
            engine="clip",
        )
    if expect_dim is not None and info.embed_dim != expect_dim:
        raise EngineError(
            f"{path}: CLIP {kind} tower has dim {info.embed_dim} but the image tower has {expect_dim} "
            "(the two files come from different models)",
            engine="clip",
        )
    return info


def text_onnx_for(image_onnx: Path) -> Path | None:
    """The text tower exported beside ``image_onnx`` (``image.onnx`` → ``text.onnx``), if present."""
    name = image_onnx.name
    cand = image_onnx.with_name(name.replace("image", "text")) if "image" in name else None
    return cand if cand is not None and cand.is_file() else None


# --------------------------------------------------------------------------- embedder


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return (
        "out of memory" in text or "failed to allocate memory" in text or "cudaerrormemoryallocation" in text
    )


class ClipEmbedder(Embedder):
    """CLIP image/text embeddings and zero-shot classification on a chosen runtime.

    Parameters mirror :class:`framesift.config.engines.EngineConfig`; ``torch_model`` (with its
    ``preprocess`` config) injects an already built open_clip model (tests, benchmarks).
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
        precision: Precision = "fp32",
        max_batch: int = 64,
        cache_dir: str | None = None,
        torch_model: Any = None,
        preprocess: PreprocessCfg | None = None,
        offline: bool = False,
        compile: bool = False,
        cuda_graphs: bool = False,
        threads: int | None = None,
        exporter: str = "dynamo",
        text_cache_size: int = TEXT_CACHE_SIZE,
    ) -> None:
        if max_batch < 1:
            raise EngineError(f"max_batch must be ≥ 1 (got {max_batch})", engine="clip")
        self.max_batch = max_batch
        self.cache = EngineCache(cache_dir)
        self._exporter = exporter
        self._onnx = Path(onnx) if onnx else None
        if self._onnx is not None and runtime == "torch":
            raise EngineError(
                f"runtime torch cannot run the ONNX file {onnx}; use runtime onnxruntime or tensorrt, "
                "or give model/pretrained/checkpoint instead",
                engine="clip",
            )
        sel = select_runtime(runtime, device)
        if self._onnx is not None and sel.runtime == "torch":
            sel = select_runtime("onnxruntime", device)
        if precision == "bf16" and sel.runtime == "onnxruntime":
            if runtime != "auto" or self._onnx is not None:
                raise EngineError(
                    "precision bf16 is not supported by onnxruntime; use runtime torch (or auto), "
                    "or precision fp32/fp16",
                    engine="clip",
                )
            sel = select_runtime("torch", sel.device)
            sel = type(sel)(sel.runtime, sel.device, "bf16 runs on torch (onnxruntime has no bf16 path)")
        self.runtime_name, self.device = sel.runtime, sel.device
        if precision == "fp16" and sel.runtime == "onnxruntime" and not sel.device.startswith("cuda"):
            raise EngineError(
                "precision fp16 with onnxruntime needs a CUDA device; use precision fp32 (or bf16 with torch)",
                engine="clip",
            )
        self.precision: Precision = precision
        self._net: Any = None
        self._run_net: Any = None
        if self._onnx is not None:
            self._init_from_onnx(self._onnx)
        else:
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
        image_rt = self._build_tower("image")
        assert image_rt is not None
        self.image_rt: Runtime = image_rt
        self._text_rt: Runtime | None = None
        self._text_built = False
        self._text_lock = threading.RLock()
        self._text_cache: OrderedDict[tuple[str, ...], np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        log.info(
            "CLIP %s (%s weights, dim %d) on %s — runtime %s: %s",
            self.info.model,
            self.info.pretrained,
            self.dim,
            self.device,
            self.runtime_name,
            sel.reason,
        )
        if self.info.pretrained == "random":
            log.warning(
                "CLIP %s has random weights: embeddings are meaningless; set engine.pretrained or "
                "engine.checkpoint for real results",
                self.info.model,
            )

    # -- construction helpers

    def _init_from_onnx(self, path: Path) -> None:
        if path.is_dir():
            path = path / "image.onnx"
        if not path.is_file():
            raise EngineError(
                f"CLIP ONNX file not found: {path} (export one with: framesift export clip --model NAME "
                "--runtime onnxruntime --out DIR)",
                engine="clip",
            )
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

    def _key(
        self, tower: str, producer: str, version: str, device: str, precision: str, **extra: Any
    ) -> EngineKey:
        return EngineKey(
            model=f"{self.info.model}/{self.info.pretrained}/{tower}",
            weights_hash=self.info.weights_hash,
            runtime=producer,
            runtime_version=version,
            device=device,
            precision=precision,
            shape_profile=extra.pop("shape_profile", {}),
            export=extra,
        )

    def _onnx_path(self, tower: str) -> Path | None:
        """The ``tower`` ONNX file: the user's, or exported from the torch model into the cache."""
        if self._onnx is not None:
            return self._image_onnx if tower == "image" else self._text_onnx
        import torch

        half = self.precision == "fp16" and self.runtime_name == "onnxruntime"
        dev = self.device if half else "cpu"
        th, tw = self.info.preprocess.size
        key = self._key(
            tower,
            "onnx-export",
            f"torch {torch.__version__}",
            device_descriptor(dev) if half else "any",
            "fp16" if half else "fp32",
            exporter=self._exporter,
            opset=ONNX_OPSET,
            shape_profile={
                "batch": "dynamic",
                "size": [th, tw] if tower == "image" else self.info.context_length,
            },
        )
        return self.cache.get_or_build(
            key, f"{tower}.onnx", lambda out: self._export_tower(tower, out, dev, half)
        )

    def _export_tower(self, tower: str, out: Path, dev: str, half: bool) -> None:
        import torch

        net = copy.deepcopy(self._net).to(dev)
        if half:
            net = net.half()
        image_tower, text_tower = _towers(net)
        th, tw = self.info.preprocess.size
        if tower == "image":
            dtype = torch.float16 if half else torch.float32
            args = (
                image_tower,
                torch.randn(2, 3, th, tw, device=dev, dtype=dtype),
                IMAGE_INPUT,
                IMAGE_OUTPUT,
            )
        else:
            args = (
                text_tower,
                self._tokenizer(["a photo of a cat.", "a dog"]).to(dev),
                TEXT_INPUT,
                TEXT_OUTPUT,
            )
        used = export_onnx(
            args[0],
            args[1],
            out,
            input_name=args[2],
            output_name=args[3],
            metadata=self.info.metadata(f"clip-{tower}"),
            exporter=self._exporter,
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
            image_tower, text_tower = _towers(self._run_net)
            o = self._rt_options
            if tower == "image":
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
                precision=self.precision,
                threads=o["threads"],
            )
        onnx_path = self._onnx_path(tower)
        if onnx_path is None:
            return None
        self.artefacts[f"{tower}.onnx"] = onnx_path
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

    def _build_tensorrt(self, tower: str, onnx_path: Path) -> Runtime:
        from framesift.engines.runtimes.tensorrt_runtime import TensorRTRuntime, build_engine, import_tensorrt

        trt = import_tensorrt()
        dev = device_descriptor(self.device)
        opt = min(self.max_batch, TRT_MAX_BATCH)
        timing = self.cache.root / f"timing-{dev.replace(':', '_').replace(' ', '_')}.cache"
        profile = {"min": 1, "opt": opt, "max": max(opt, TRT_MAX_BATCH)}
        key = self._key(
            tower,
            "tensorrt",
            str(trt.__version__),
            dev,
            self.precision,
            onnx_sha256=file_sha256(onnx_path),
            shape_profile=profile,
        )

        def build(out: Path) -> None:
            out.write_bytes(
                build_engine(
                    onnx_path,
                    precision=self.precision,
                    min_batch=profile["min"],
                    opt_batch=profile["opt"],
                    max_batch=profile["max"],
                    timing_cache=timing,
                )
            )

        plan = self.cache.get_or_build(key, f"{tower}.plan", build)
        self.artefacts[f"{tower}.plan"] = plan
        return TensorRTRuntime(plan.read_bytes(), device=self.device, precision=self.precision)

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
                if not _is_oom(exc):
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
        arrays = as_images(images)
        if not arrays:
            return np.zeros((0, self.dim), np.float32)
        out: list[np.ndarray] = []
        # Preprocess per chunk so a huge call never materialises every tensor at once.
        step = self.max_batch * 4
        for s in range(0, len(arrays), step):
            x = self.preprocessor(arrays[s : s + step])
            out.append(self._run_chunked(self.image_rt, IMAGE_INPUT, IMAGE_OUTPUT, x, len(x)))
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

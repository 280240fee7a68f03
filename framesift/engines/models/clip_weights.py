"""Where CLIP weights come from: open_clip names and pretrained tags, local checkpoints, and the
weights already in open_clip's caches (looked up without touching the network)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from framesift.engines.models.clip_preprocess import PreprocessCfg
from framesift.engines.weights import check_weights_file, not_a_checkpoint
from framesift.errors import ConfigError, EngineError

CHECKPOINT_FIX = "give an open_clip .pt/.bin/.safetensors checkpoint of this model, or a pretrained tag"
RANDOM_SEED = 0  # random weights (no pretrained, no checkpoint) are seeded: the same on every build


def list_clip_models() -> list[str]:
    import open_clip

    return list(open_clip.list_models())


def check_model_name(name: str) -> None:
    """ConfigError (exit 2) listing close matches when ``name`` is not an open_clip architecture."""
    import open_clip

    if open_clip.get_model_config(name.replace("/", "-")) is not None:
        return
    models = list_clip_models()
    close = difflib.get_close_matches(name, models, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"e.g. {', '.join(models[:5])}"
    raise ConfigError(
        f"unknown CLIP model {name!r}: {hint} (all {len(models)} names: python -c "
        "'import open_clip; print(open_clip.list_models())')"
    )


def weight_caches_hold_clip(cache_dir: str | None = None) -> bool:
    """Whether open_clip's URL cache holds a file, or the Hugging Face hub cache a repository named
    like CLIP: without either there are no cached weights, and importing open_clip (seconds) can be
    skipped."""
    clip_dir = cache_dir or os.path.expanduser("~/.cache/clip")
    try:
        if any(os.path.isfile(os.path.join(clip_dir, n)) for n in os.listdir(clip_dir)):
            return True
    except OSError:
        pass
    try:
        from huggingface_hub import constants

        hub = str(constants.HF_HUB_CACHE)
    except ImportError:
        return False  # open_clip then reads only its URL cache
    try:
        return any("clip" in name.lower() for name in os.listdir(hub))
    except OSError:
        return False


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
        raise ConfigError(
            f"unknown pretrained tag {tag!r} for CLIP model {model!r} "
            f"(available: {', '.join(tags) or 'none; use a local checkpoint'})"
        )
    return dict(cfg)


def hub_host() -> str:
    """The model hub open_clip downloads from (``HF_ENDPOINT``, else huggingface.co)."""
    from urllib.parse import urlsplit

    return urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout_s``: offline, a download would
    otherwise spend about a minute in retries before failing."""
    import socket

    try:
        with socket.create_connection((hub_host(), 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def load_open_clip(
    model: str, *, pretrained: str | None = None, checkpoint: str | None = None, offline: bool = False
) -> tuple[Any, PreprocessCfg]:
    """Build the open_clip model (eval, fp32, CPU) and its preprocessing config.

    ``pretrained`` is a tag (weights from open_clip's cache or, unless ``offline``, its download);
    ``checkpoint`` a local ``.pt``/``.bin``/``.safetensors`` file; neither → random weights (tests,
    benchmarks), seeded with :data:`RANDOM_SEED` so that every build of a model has the same ones.
    """
    import contextlib

    import open_clip
    import torch

    check_model_name(model)
    name = model.replace("/", "-")
    force_qg = False
    weights: str | None = None
    pre_over: dict[str, Any] = {}
    if checkpoint is not None:
        if not os.path.exists(checkpoint):
            raise ConfigError(
                f"CLIP checkpoint not found: {checkpoint} (give an existing .pt/.bin/.safetensors file, "
                "or set pretrained: TAG to let open_clip download weights)"
            )
        check_weights_file(checkpoint, "CLIP", fix=CHECKPOINT_FIX)
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
        if weights is None and not hub_reachable():
            raise ConfigError(
                f"CLIP weights {name}/{pretrained} are not on this machine and the model hub "
                f"({hub_host()}) cannot be reached: give a local open_clip checkpoint "
                "(--clip-pretrained /path/to/weights.pt, or engine.checkpoint in a config), or 'none' for "
                "random weights (tests and benchmarks only; see the README's offline recipe)"
            )
        if weights is None:
            weights = pretrained  # let open_clip download it
    seeded = torch.random.fork_rng(devices=[]) if weights is None else contextlib.nullcontext()
    try:
        with seeded:
            if weights is None:
                torch.manual_seed(RANDOM_SEED)
            net = open_clip.create_model(
                name,
                pretrained=weights,
                force_quick_gelu=force_qg,
                force_preprocess_cfg=pre_over or None,
            )
    except Exception as exc:
        if checkpoint is not None:  # the user's file: a usage error, in one line
            raise not_a_checkpoint(checkpoint, f"CLIP {name}", exc, fix=CHECKPOINT_FIX) from None
        what = f"pretrained {name}/{pretrained}"
        hint = " (no network? give a local checkpoint path; HF_HUB_OFFLINE=1 fails fast)"
        raise EngineError(f"cannot load CLIP {what}: {exc}".splitlines()[0] + hint, engine="clip") from exc
    net = net.eval()
    cfg = PreprocessCfg.from_open_clip(open_clip.get_model_preprocess_cfg(net))
    return net, cfg

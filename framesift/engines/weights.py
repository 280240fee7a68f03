"""Checks for the weight files users name (checkpoints, state dicts, exported graphs).

Every loader of a user-given weights file goes through here, so that a missing file, a file of
another kind (a text file, a video) or a checkpoint of another model is one line naming the file,
the model it should hold and what to pass instead, as a :class:`~framesift.errors.ConfigError`
(exit 2) — never ``torch.load``'s multi-line message, whose advice (``weights_only=False``) would
run the file's code.
"""

from __future__ import annotations

import os
from pathlib import Path

from framesift.errors import ConfigError

MAX_REASON = 160  # characters of a loader's own message kept in the one-line error


def file_format(path: str | os.PathLike[str]) -> str | None:
    """What the first bytes of ``path`` say it is: ``torch`` (``torch.save``'s zip archive, also
    TorchScript and ``.pt2``), ``pickle`` (the legacy ``torch.save`` format), ``safetensors``,
    ``onnx`` (a protobuf starting with ``ir_version``), or None (none of these)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors"
    if head[:1] == b"\x08":
        return "onnx"
    return None


def _kinds(formats: tuple[str, ...]) -> str:
    names = {"torch": "PyTorch", "pickle": "PyTorch", "safetensors": "safetensors", "onnx": "ONNX"}
    return " or ".join(dict.fromkeys(names[f] for f in formats))


def check_weights_file(
    path: str | os.PathLike[str],
    model: str,
    *,
    fix: str,
    formats: tuple[str, ...] = ("torch", "pickle", "safetensors"),
) -> Path:
    """``path`` as a Path when it is a readable file in one of ``formats``; ConfigError otherwise,
    ``{path}: not a {model} checkpoint (...); {fix}`` (or ``... : no such file; {fix}``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"{path}: not found; {fix}")
    if p.is_dir():
        raise ConfigError(f"{path}: is a folder, not a {model} checkpoint; {fix}")
    try:
        found = file_format(p)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc}); {fix}") from None
    if found not in formats:
        raise ConfigError(f"{path}: not a {model} checkpoint (not a {_kinds(formats)} file); {fix}")
    return p


def not_a_checkpoint(
    path: str | os.PathLike[str], model: str, exc: BaseException, *, fix: str
) -> ConfigError:
    """The one-line ConfigError for a file whose loader failed with ``exc``: the loader's message
    on one line, shortened; ``torch.load``'s refusal of non-tensor objects said in plain words."""
    text = str(exc)
    if "Weights only load failed" in text:
        reason = "it holds Python objects besides tensors, which framesift does not load"
    else:
        reason = " ".join(text.split()) or type(exc).__name__
        if len(reason) > MAX_REASON:
            reason = reason[: MAX_REASON - 1] + "…"
    return ConfigError(f"{path}: not a {model} checkpoint ({reason}); {fix}")

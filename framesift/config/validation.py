"""Validation errors as one line per problem: ``where: field.path: what is wrong (allowed: ...)``.

Every piece of the input a message repeats (a value, a key, a type name) is cut to
:data:`MAX_ECHO` characters, so a hostile or mistaken 50 MB value gives a short message. An unknown
key lists the keys allowed at that place (for a plugin, those of its ``type``) and suggests the
nearest one.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from framesift.errors import ConfigError

__all__ = ["MAX_ECHO", "MAX_PROBLEMS", "clip", "clip_repr", "format_validation_error", "validate_model"]

#: Characters of an input value repeated in a message; longer ones end in ``...``.
MAX_ECHO = 200
#: Problems listed one per line; the rest are counted on a last line.
MAX_PROBLEMS = 20


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text``, or its first ``limit`` characters and ``... (N characters)``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def clip_repr(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)`` of at most about ``limit`` characters (without building a huge repr first)."""
    if isinstance(value, (str, bytes)) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} {'characters' if isinstance(value, str) else 'bytes'})"
    try:
        text = repr(value)
    except ValueError:  # an int too large to print
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


_QUOTED = re.compile(rf"'([^'\n]{{{MAX_ECHO + 1},}})'")


def _clip_quoted(msg: str) -> str:
    """A message of pydantic's or of our validators, with long quoted values (our validators repeat
    the value: ``id '....' is not a name``) cut like :func:`clip_repr`, and the whole bounded."""
    return clip(_QUOTED.sub(lambda m: clip_repr(m.group(1)), msg), 4 * MAX_ECHO)


@functools.cache
def _discriminator_tags() -> frozenset[str]:
    """Every plugin's ``type`` name (pydantic puts the tag of a discriminated union into error
    locations; messages leave it out)."""
    from framesift.config import plugins

    return frozenset(t for kind in plugins.PACKAGES for t in plugins.types(kind))


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not str(p).startswith("function")]
    # Drop discriminator tags pydantic inserts (e.g. sources.0.file.path → sources.0.path).
    out: list[str] = []
    for i, p in enumerate(parts):
        if i > 0 and p in _discriminator_tags():  # no field is named like a type (tested)
            continue
        out.append(clip(p, 60))
    return ".".join(out) or "(top level)"


# -- the model an error location points into --------------------------------------------------------


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tag_of(tp: Any) -> str | None:
    field = tp.model_fields.get("type") if _is_model(tp) else None
    return field.default if field is not None and isinstance(field.default, str) else None


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _model_at(tp: Any, path: tuple[Any, ...], depth: int = 0) -> type[BaseModel] | None:
    """The pydantic model that the location ``path`` (pydantic's, tags included) points into,
    starting from the type ``tp``; None when it cannot be told."""
    tp = _unwrap(tp)
    if depth > 40:
        return None
    path = tuple(p for p in path if not str(p).startswith("function"))
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        if path:  # pydantic names the member it tried: a discriminator tag or a class name
            for m in members:
                um = _unwrap(m)
                if path[0] == _tag_of(um) or path[0] == getattr(um, "__name__", None):
                    return _model_at(um, path[1:], depth + 1)
        found = {r for m in members if (r := _model_at(m, path, depth + 1)) is not None}
        return found.pop() if len(found) == 1 else None
    if not path:
        return tp if _is_model(tp) else None
    head, rest = path[0], path[1:]
    if _is_model(tp):
        for name, field in tp.model_fields.items():
            if head in (name, field.alias):
                return _model_at(field.annotation, rest, depth + 1)
        return None
    args = typing.get_args(tp)
    if isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
        return _model_at(args[1], rest, depth + 1)
    if isinstance(origin, type) and issubclass(origin, Sequence | set | frozenset) and isinstance(head, int):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return _model_at(args[head], rest, depth + 1) if head < len(args) else None
        return _model_at(args[0], rest, depth + 1) if args else None
    return None


def _plugin_model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Without the root model: from the last plugin ``type`` tag in ``loc``, when only one plugin
    kind has that tag."""
    from framesift.config import plugins

    for i in range(len(loc) - 1, -1, -1):
        if isinstance(loc[i], str) and loc[i] in _discriminator_tags():
            specs = [s for kind in plugins.PACKAGES for s in plugins.specs(kind) if s.type_name() == loc[i]]
            return _model_at(specs[0], loc[i + 1 :]) if len(specs) == 1 else None
    return None


def _keys(model: type[BaseModel]) -> list[str]:
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _nearest(key: str, allowed: list[str]) -> str | None:
    """The allowed key nearest to ``key`` by :mod:`difflib`, also matching the last words of a key
    (``fps`` → ``target_fps``)."""
    variants: dict[str, str] = {}
    for name in allowed:
        variants.setdefault(name, name)
    for name in allowed:
        words = name.split("_")
        for i in range(1, len(words)):
            variants.setdefault("_".join(words[i:]), name)
    close = difflib.get_close_matches(key, list(variants), n=1, cutoff=0.6)
    return variants[close[0]] if close else None


def _unknown_key(loc: tuple[Any, ...], root: Any) -> str:
    key = loc[-1] if loc else ""
    msg = f"unknown key {clip_repr(key)}"
    model = _model_at(root, loc[:-1]) if root is not None else None
    if model is None:
        model = _plugin_model_at(loc[:-1])
    if model is None:
        return msg
    allowed = _keys(model)
    near = _nearest(str(key), allowed) if isinstance(key, str) and len(key) <= MAX_ECHO else None
    hint = f"did you mean {near!r}? " if near else ""
    return f"{msg} ({hint}allowed: {', '.join(allowed)})"


def format_validation_error(
    err: ValidationError, where: str, model: Any = None, flags: Mapping[str, str] | None = None
) -> str:
    """One line per problem: ``where: field.path: what is wrong (allowed: ...)``.

    ``model`` is the type that was validated (a model class or any annotation); with it, an unknown
    key lists the keys allowed in its place. ``flags``: the command-line option that set a field
    (``{"budget": "--budget"}``), named instead of ``where: field``.
    """
    lines = []
    problems = err.errors()
    for e in problems[:MAX_PROBLEMS]:
        raw_loc = tuple(e["loc"])
        loc = _loc(raw_loc)
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = _unknown_key(raw_loc, model)
        elif kind == "union_tag_invalid":
            ctx = e.get("ctx", {})
            msg = f"unknown type {clip_repr(ctx.get('tag'))} (allowed: {ctx.get('expected_tags')})"
        elif kind == "union_tag_not_found":
            msg = "missing key 'type'"
        else:
            got = e.get("input")
            got_s = "" if isinstance(got, (dict, list)) or got is None else f" (got {clip_repr(got)})"
            msg = _clip_quoted(e["msg"]) + got_s
        flag = (flags or {}).get(loc)
        lines.append(f"{flag}: {msg}" if flag else f"{where}: {loc}: {msg}")
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"{where}: ... and {len(problems) - MAX_PROBLEMS} more problems (fix these first)")
    return "\n".join(lines)


M = TypeVar("M", bound=BaseModel)


def validate_model(
    model: type[M], data: dict[str, Any], *, where: str, flags: Mapping[str, str] | None = None
) -> M:
    """``model(**data)``, or ConfigError with one line per problem (``where: field: what is wrong``,
    or ``--flag: what is wrong`` for a field in ``flags``)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where, model, flags)) from None

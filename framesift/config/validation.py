"""Validation errors as one line per problem: ``where: field.path: what is wrong (allowed: ...)``."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from framesift.errors import ConfigError

__all__ = ["format_validation_error", "validate_model"]


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
        out.append(p)
    return ".".join(out) or "(top level)"


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line per problem: ``where: field.path: what is wrong (allowed: ...)``."""
    lines = []
    for e in err.errors():
        loc = _loc(tuple(e["loc"]))
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = f"unknown key {loc.rsplit('.', 1)[-1]!r}"
        elif kind == "union_tag_invalid":
            ctx = e.get("ctx", {})
            msg = f"unknown type {ctx.get('tag')!r} (allowed: {ctx.get('expected_tags')})"
        elif kind == "union_tag_not_found":
            msg = "missing key 'type'"
        else:
            got = e.get("input")
            got_s = "" if isinstance(got, (dict, list)) or got is None else f" (got {got!r})"
            msg = e["msg"] + got_s
        lines.append(f"{where}: {loc}: {msg}")
    return "\n".join(lines)


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: dict[str, Any], *, where: str) -> M:
    """``model(**data)``, or ConfigError with one line per problem (``where: field: what is wrong``)."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, where)) from None

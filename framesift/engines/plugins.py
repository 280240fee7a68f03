"""Building an engine plugin (detector, segmenter) from its config model."""

from __future__ import annotations

from typing import Any

from framesift.config.base import PluginSpec


def build(spec: PluginSpec, kind: type, **options: Any) -> Any:
    """``spec``'s implementation built from ``spec``: ``target.from_config(spec, **options)``, or
    ``target(spec, **options)``; TypeError when the result is not a ``kind``."""
    target = type(spec).implementation_target()
    make = getattr(target, "from_config", target)
    engine = make(spec, **options)
    if not isinstance(engine, kind):
        raise TypeError(
            f"{type(spec).__name__}.implementation {type(spec).implementation!r} built a "
            f"{type(engine).__name__}, not a {kind.__name__}"
        )
    return engine

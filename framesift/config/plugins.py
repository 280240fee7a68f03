"""The plugin registry, derived from the plugins' own config models.

Each kind has its packages; every module in them that defines a spec of that kind (see
:class:`framesift.config.base.PluginSpec`) is a plugin. Installed packages may add plugins through
the ``framesift.plugins`` entry-point group (each entry names a module to import). From these
declarations come the discriminated unions of the pipeline config (:func:`union`), the lookup by
type name (:func:`spec_for`) and the configuration reference. Plugin modules import their heavy
packages (torch, paho-mqtt, ...) inside functions, so finding them stays cheap.
"""

from __future__ import annotations

import functools
import importlib
import logging
import pkgutil
from typing import Annotated, Any, Union

from pydantic import Discriminator, Field, Tag

from framesift.config.base import PluginSpec
from framesift.errors import ConfigError

log = logging.getLogger("framesift.plugins")

#: Where each kind's plugins live: packages (every module in them) or single modules.
PACKAGES: dict[str, tuple[str, ...]] = {
    "source": ("framesift.stream.sources", "framesift.store.source"),
    "sink": ("framesift.sinks",),
    "analyzer": ("framesift.analyzers",),
    "detector": ("framesift.engines.detectors",),
    "segmenter": ("framesift.engines.segmenters",),
}
ENTRY_POINT_GROUP = "framesift.plugins"


def _specs_in(module: Any, kind: str) -> list[type[PluginSpec]]:
    out = []
    for obj in vars(module).values():
        if (
            isinstance(obj, type)
            and issubclass(obj, PluginSpec)
            and obj.kind == kind
            and obj.__module__ == module.__name__
            and "type" in obj.model_fields
        ):
            out.append(obj)
    return out


@functools.cache
def _installed_plugins() -> tuple[tuple[str, str], ...]:
    """(name, module) of each ``framesift.plugins`` entry point, read once (it scans every installed
    distribution's metadata)."""
    from importlib.metadata import entry_points

    return tuple((ep.name, ep.value.split(":")[0]) for ep in entry_points(group=ENTRY_POINT_GROUP))


@functools.cache
def specs(kind: str) -> tuple[type[PluginSpec], ...]:
    """Every config model of ``kind``, ours first (in module order), then installed plugins'."""
    if kind not in PACKAGES:
        raise ValueError(f"unknown plugin kind {kind!r} (one of {', '.join(PACKAGES)})")
    found: list[type[PluginSpec]] = []
    for name in PACKAGES[kind]:
        module = importlib.import_module(name)
        if not hasattr(module, "__path__"):  # a single plugin module
            found += _specs_in(module, kind)
            continue
        for info in sorted(pkgutil.iter_modules(module.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                found += _specs_in(importlib.import_module(f"{name}.{info.name}"), kind)
    for ep_name, module_name in _installed_plugins():
        try:
            found += _specs_in(importlib.import_module(module_name), kind)
        except Exception as exc:  # a broken third-party plugin must not break framesift
            log.warning(
                "plugin %s (%s) failed to load: %s: %s", ep_name, module_name, type(exc).__name__, exc
            )
    by_tag: dict[str, type[PluginSpec]] = {}
    for spec in found:
        tag = spec.type_name()
        if tag in by_tag and by_tag[tag] is not spec:
            raise TypeError(
                f"{kind} type {tag!r} is declared twice: {by_tag[tag].__module__} and {spec.__module__}"
            )
        by_tag[tag] = spec
    return tuple(by_tag.values())


def union(kind: str, *, default: str | None = None) -> Any:
    """The discriminated union (on ``type``) of every config model of ``kind``; with ``default``, an
    entry without ``type`` is that type (detectors and segmenters, where one is the usual choice)."""
    members = specs(kind)
    if not members:
        raise TypeError(f"no {kind} plugins found in {', '.join(PACKAGES[kind])}")
    if default is None:
        inner = members[0] if len(members) == 1 else Union[members]  # noqa: UP007 - built at run time
        return Annotated[inner, Field(discriminator="type")]

    def tag(value: Any) -> Any:
        return value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default)

    tagged = tuple(Annotated[m, Tag(m.type_name())] for m in members)
    return Annotated[Union[tagged], Discriminator(tag)]  # noqa: UP007 - built at run time


def types(kind: str) -> list[str]:
    """The ``type`` names of ``kind``."""
    return [s.type_name() for s in specs(kind)]


def spec_for(kind: str, type_name: str) -> type[PluginSpec]:
    """The config model of ``kind`` named ``type_name``; ConfigError naming the choices."""
    for s in specs(kind):
        if s.type_name() == type_name:
            return s
    raise ConfigError(f"unknown {kind} type {type_name!r} (available: {', '.join(sorted(types(kind)))})")


def implementation(spec: PluginSpec) -> Any:
    """What ``spec`` names as its implementation (imported on first use)."""
    return type(spec).implementation_target()

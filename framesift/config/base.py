"""The base of every config model, and of every plugin's: a plugin's model names its implementation.

A source, sink, analyzer, detector or segmenter is one module: its config model (a subclass of the
kind's spec base with a ``type: Literal["name"]`` field) and the implementation that model names in
``implementation``. :mod:`framesift.config.plugins` finds the models and derives from them the
registry, the config unions and the configuration reference; nothing else lists them.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from framesift.errors import ConfigError

OnFull = Literal["drop_oldest", "drop_newest", "block"]
"""What a bounded queue does when it is full (ring buffers, sink queues)."""


class Strict(BaseModel):
    """Base for all config models: unknown keys are errors; models are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginSpec(Strict):
    """A plugin's config model.

    ``kind`` is set by the kind's base (``source``, ``sink``, ``analyzer``, ``detector``,
    ``segmenter``); ``implementation`` names what runs the config: an attribute of the model's own
    module (``"JsonlSink"``) or ``"package.module:attribute"``. ``extra`` names the pip extra whose
    packages the implementation imports, for the error when they are missing.
    """

    kind: ClassVar[str] = ""
    implementation: ClassVar[str] = ""
    extra: ClassVar[str | None] = None

    @classmethod
    def type_name(cls) -> str:
        """The ``type`` tag of this model (its ``type`` field's default)."""
        field = cls.model_fields.get("type")
        if field is None or not isinstance(field.default, str):
            raise TypeError(f"{cls.__name__} declares no `type` literal with a default")
        return field.default

    @classmethod
    def require(cls, *modules: str) -> None:
        """ConfigError naming the pip extra when one of ``modules`` cannot be imported."""
        for name in modules:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                hint = f"pip install 'framesift[{cls.extra}]'" if cls.extra else f"pip install {exc.name}"
                raise ConfigError(
                    f"{cls.kind} type {cls.type_name()!r} needs the Python package {exc.name!r}: {hint}"
                ) from None

    @classmethod
    def implementation_target(cls) -> Any:
        """The class or function ``implementation`` names; ConfigError when its packages are missing."""
        target = cls.implementation
        if not target:
            raise TypeError(f"{cls.__name__} names no implementation")
        module_name, _, attr = target.rpartition(":")
        module_name = module_name or cls.__module__
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.startswith("framesift"):
                raise
            hint = f"pip install 'framesift[{cls.extra}]'" if cls.extra else f"pip install {exc.name}"
            raise ConfigError(
                f"{cls.kind} type {cls.type_name()!r} needs the Python package {exc.name!r}: {hint}"
            ) from None
        return getattr(module, attr)


class AnalyzerSpec(PluginSpec):
    """Base of analyzer configs; the implementation is an Analyzer class with
    ``from_config(cfg, embedder)``."""

    kind: ClassVar[str] = "analyzer"

    def uses_embedder(self) -> bool:
        """Whether the analyzer needs the pipeline's embedder (``engine:``); the pipeline builds one
        only when some analyzer does."""
        return True

    def runs_detector(self) -> bool:
        """Whether the analyzer runs a detector model of its own (the thread plan then shares the
        cores between it and decoding: :mod:`framesift.threads`)."""
        return False


class DetectorSpec(PluginSpec):
    """Base of detector configs (open-vocabulary object detection)."""

    kind: ClassVar[str] = "detector"


class SegmenterSpec(PluginSpec):
    """Base of segmenter configs (masks from boxes)."""

    kind: ClassVar[str] = "segmenter"

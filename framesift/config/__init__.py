"""Pipeline configuration: YAML → pydantic v2 models, strict, with clear errors.

``${VAR}`` and ``${VAR:-default}`` in the YAML text are replaced from the environment before
parsing (for secrets); an unset variable without a default is an error naming it.

The ``sources``, ``sinks`` and ``analyzers`` entries are plugins: their models live in the plugins'
own modules and the unions here are derived from them (:mod:`framesift.config.plugins`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import GenericAlias
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, create_model

from framesift.config import plugins
from framesift.config.base import AnalyzerSpec, PluginSpec, Strict
from framesift.config.engines import EngineConfig
from framesift.config.sinks import MetricsConfig, SinkSpec
from framesift.config.sources import BufferConfig, ReconnectConfig, SourceSpec
from framesift.config.validation import format_validation_error, validate_model
from framesift.errors import ConfigError

__all__ = [
    "AnalyzerConfig",
    "AnalyzerSpec",
    "BufferConfig",
    "EngineConfig",
    "LogConfig",
    "MetricsConfig",
    "PipelineConfig",
    "PluginSpec",
    "ReconnectConfig",
    "SinkConfig",
    "SinkSpec",
    "SourceConfig",
    "SourceSpec",
    "StageConfig",
    "Strict",
    "format_validation_error",
    "load_config",
    "parse_config",
    "pipeline_model",
    "substitute_env",
    "validate_model",
]


class StageConfig(Strict):
    """The batching stage between buffers and engines."""

    max_batch: int = Field(16, ge=1, le=4096)
    max_wait_ms: float = Field(20.0, ge=0)
    stale_after_ms: float | None = Field(2000.0, gt=0, description="live frames older than this are dropped")


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["plain", "json"] = "plain"


class PipelineSettings(Strict):
    """The parts of a pipeline config that are not plugins."""

    engine: EngineConfig = EngineConfig()
    stage: StageConfig = StageConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()


if TYPE_CHECKING:  # the checker sees the plugin bases; at run time each is the union of its plugins
    SourceConfig = SourceSpec
    SinkConfig = SinkSpec
    AnalyzerConfig = AnalyzerSpec

    class PipelineConfig(PipelineSettings):
        """A whole pipeline: sources → stage → analyzers → sinks."""

        sources: list[SourceSpec]
        sinks: list[SinkSpec]
        analyzers: list[AnalyzerSpec]


_UNION_KINDS = {"SourceConfig": "source", "SinkConfig": "sink", "AnalyzerConfig": "analyzer"}
_built: dict[str, Any] = {}


def pipeline_model() -> type[PipelineConfig]:
    """The pipeline config model, built on first use: its ``sources``, ``sinks`` and ``analyzers``
    are the unions of the plugins found (the plugins' modules import this package's submodules, so
    they cannot all be found while it is being imported)."""
    model = _built.get("PipelineConfig")
    if model is None:
        fields: dict[str, Any] = {
            "sources": (GenericAlias(list, __getattr__("SourceConfig")), Field(min_length=1)),
            "sinks": (GenericAlias(list, __getattr__("SinkConfig")), Field(default_factory=list)),
            "analyzers": (GenericAlias(list, __getattr__("AnalyzerConfig")), Field(default_factory=list)),
        }
        fields.update((name, (f.annotation, f)) for name, f in PipelineSettings.model_fields.items())
        make: Any = create_model
        model = _built["PipelineConfig"] = make(
            "PipelineConfig",
            __base__=Strict,
            __module__=__name__,
            __doc__="A whole pipeline: sources → stage → analyzers → sinks.",
            **fields,
        )
    return model


def __getattr__(name: str) -> Any:
    if name in _UNION_KINDS:
        if name not in _built:
            _built[name] = plugins.union(_UNION_KINDS[name])
        return _built[name]
    if name == "PipelineConfig":
        return pipeline_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(text: str, *, where: str = "config") -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}``; raise ConfigError for an unset VAR."""

    def _sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is None:
                line = text.count("\n", 0, m.start()) + 1
                raise ConfigError(
                    f"{where}:{line}: environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}})"
                )
            return default
        return value

    return _ENV_RE.sub(_sub, text)


def parse_config(data: Any, *, where: str = "config") -> PipelineConfig:
    """Validate a parsed mapping; raises ConfigError with every problem listed."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'sources:' at the top level")
    return validate_model(pipeline_model(), data, where=where)


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read, substitute environment variables, parse YAML and validate a pipeline config file."""
    p = Path(path)
    where = str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read config file ({exc})") from None
    text = substitute_env(text, where=where)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}{pos}: malformed YAML: {problem}") from None
    return parse_config(data, where=where)

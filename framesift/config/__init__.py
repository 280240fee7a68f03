"""Pipeline configuration: YAML → pydantic v2 models, strict, with clear errors.

``${VAR}`` and ``${VAR:-default}`` in the YAML text are replaced from the environment before
parsing (for secrets); an unset variable without a default is an error naming it.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError

from framesift.config.collect import CollectorConfig, FrameStoreSinkConfig
from framesift.config.delivery import MqttSinkConfig, WebhookSinkConfig
from framesift.config.detect import DetectionsSinkConfig, TrackerConfig, VideoSinkConfig
from framesift.config.engines import EngineConfig
from framesift.config.scene import SceneChangeConfig
from framesift.config.sinks import JsonlSinkConfig, MetricsConfig, SinkCommon
from framesift.config.sources import (
    LIVE_TYPES,
    BufferConfig,
    FileSourceConfig,
    ReconnectConfig,
    SourceConfig,
    Strict,
)
from framesift.errors import ConfigError

__all__ = [
    "LIVE_TYPES",
    "AnalyzerConfig",
    "BufferConfig",
    "CollectorConfig",
    "EngineConfig",
    "FileSourceConfig",
    "FrameStoreSinkConfig",
    "JsonlSinkConfig",
    "LogConfig",
    "MetricsConfig",
    "MqttSinkConfig",
    "PipelineConfig",
    "ReconnectConfig",
    "SceneChangeConfig",
    "SinkCommon",
    "SinkConfig",
    "SourceConfig",
    "StageConfig",
    "Strict",
    "WebhookSinkConfig",
    "load_config",
    "parse_config",
    "validate_model",
]

# Adding a component type: define its model (``type: Literal["name"]``) in the matching module, add
# it to the union here (or in sources.py), and map ``name`` to its class in framesift/registry.py.
# Error messages pick the new type up by themselves (see _discriminator_tags).
SinkConfig = Annotated[
    JsonlSinkConfig
    | FrameStoreSinkConfig
    | MqttSinkConfig
    | WebhookSinkConfig
    | DetectionsSinkConfig
    | VideoSinkConfig,
    Field(discriminator="type"),
]
AnalyzerConfig = Annotated[SceneChangeConfig | CollectorConfig | TrackerConfig, Field(discriminator="type")]


class StageConfig(Strict):
    """The batching stage between buffers and engines."""

    max_batch: int = Field(16, ge=1, le=4096)
    max_wait_ms: float = Field(20.0, ge=0)
    stale_after_ms: float | None = Field(2000.0, gt=0, description="live frames older than this are dropped")


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["plain", "json"] = "plain"


class PipelineConfig(Strict):
    """A whole pipeline: sources → stage → analyzers → sinks."""

    sources: list[SourceConfig] = Field(min_length=1)
    sinks: list[SinkConfig] = Field(default_factory=list)
    analyzers: list[AnalyzerConfig] = Field(default_factory=list)
    engine: EngineConfig = EngineConfig()
    stage: StageConfig = StageConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()


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


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("function-after",) and not str(p).startswith("function")]
    # Drop discriminator tags pydantic inserts (e.g. sources.0.file.path → sources.0.path).
    out: list[str] = []
    for i, p in enumerate(parts):
        if i > 0 and parts[i - 1].isdigit() and p in _discriminator_tags():
            continue
        out.append(p)
    return ".".join(out) or "(top level)"


@functools.cache
def _discriminator_tags() -> frozenset[str]:
    """Every ``type`` literal of every model reachable from PipelineConfig (pydantic puts the tag of
    a discriminated union into error locations; messages leave it out)."""
    tags: set[str] = set()
    seen: set[type] = set()

    def visit(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in seen:
                return
            seen.add(tp)
            for name, f in tp.model_fields.items():
                if name == "type" and get_origin(f.annotation) is Literal:
                    tags.update(str(a) for a in get_args(f.annotation))
                visit(f.annotation)
            return
        for arg in get_args(tp):
            visit(arg)

    visit(PipelineConfig)
    return frozenset(tags)


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line per problem: ``file: field.path: what is wrong (allowed: ...)``."""
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


def parse_config(data: Any, *, where: str = "config") -> PipelineConfig:
    """Validate a parsed mapping; raises ConfigError with every problem listed."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'sources:' at the top level")
    return validate_model(PipelineConfig, data, where=where)


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

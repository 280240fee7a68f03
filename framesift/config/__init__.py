"""Pipeline configuration: YAML → pydantic v2 models, strict, with clear errors.

``${VAR}`` and ``${VAR:-default}`` in the YAML are replaced from the environment (for secrets) inside
the scalar that holds them: the value is data, never YAML syntax. An unset variable without a default
is an error naming it. Files over 1 MiB and nesting deeper than 50 levels are refused.

The ``sources``, ``sinks`` and ``analyzers`` entries are plugins: their models live in the plugins'
own modules and the unions here are derived from them (:mod:`framesift.config.plugins`).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from types import GenericAlias
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import yaml
from pydantic import Field, create_model

from framesift.config import plugins
from framesift.config.base import AnalyzerSpec, PluginSpec, Strict
from framesift.config.engines import EngineConfig
from framesift.config.sinks import MetricsConfig, SinkSpec
from framesift.config.sources import BufferConfig, ReconnectConfig, SourceSpec
from framesift.config.validation import clip, format_validation_error, validate_model
from framesift.errors import ConfigError

__all__ = [
    "AnalyzerConfig",
    "AnalyzerSpec",
    "BufferConfig",
    "ClusterConfig",
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
    "read_config_text",
    "read_yaml",
    "substitute_env",
    "validate_model",
]


class StageConfig(Strict):
    """The batching stage between buffers and engines."""

    max_batch: int = Field(16, ge=1, le=4096)
    max_wait_ms: float = Field(20.0, ge=0)
    stale_after_ms: float | None = Field(2000.0, gt=0, description="live frames older than this are dropped")


class ClusterConfig(Strict):
    """A fleet: the live sources spread over a Ray cluster's nodes (``framesift run --ray``)."""

    ray: str = Field(description="the cluster: local, auto or HOST:PORT (as --ray)")
    cpus_per_source: float = Field(0.5, gt=0, le=64, description="Ray CPUs each source's actor reserves")
    event_queue: int = Field(
        4096, ge=16, le=1_000_000, description="events a node holds for the driver at most (more are dropped)"
    )


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["plain", "json"] = "plain"


class PipelineSettings(Strict):
    """The parts of a pipeline config that are not plugins."""

    engine: EngineConfig = EngineConfig()
    stage: StageConfig = StageConfig()
    metrics: MetricsConfig = MetricsConfig()
    log: LogConfig = LogConfig()
    cluster: ClusterConfig | None = None


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

#: A pipeline config is a few KiB; bigger files are refused before they are read (YAML parsing is
#: slow and memory-hungry on large inputs).
MAX_CONFIG_BYTES = 1 << 20
#: Mappings and lists nested deeper than this are refused (a pipeline config is about 5 deep).
MAX_DEPTH = 50


def substitute_env(text: str, *, where: str = "config") -> str:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in ``text``; raise ConfigError for an unset VAR.

    This is plain text replacement: a value holding YAML syntax (quotes, ``:``, ``#``, newlines)
    changes what the YAML means. Configs are read with :func:`read_yaml`, which substitutes
    values as data.
    """

    def _sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is None:
                line = text.count("\n", 0, m.start()) + 1
                raise _unset(where, line, name)
            return default
        return value

    return _ENV_RE.sub(_sub, text)


def _unset(where: str, line: int, name: str) -> ConfigError:
    name = clip(name, 100)
    return ConfigError(
        f"{where}:{line}: environment variable {name} is not set (set it, or write ${{{name}:-default}})"
    )


class _EnvRef(NamedTuple):
    name: str
    default: str | None
    line: int


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing deep nesting, with environment references (replaced by inert
    placeholders before parsing) substituted into the scalars that hold them, as data."""

    def __init__(self, text: str, where: str) -> None:
        self.where = where
        self.refs: list[_EnvRef] = []
        nonce = secrets.token_hex(8)
        while nonce in text:  # pragma: no cover - 64 random bits
            nonce = secrets.token_hex(8)
        # letters and digits only: inert in plain, quoted and flow scalars, never a number or bool
        self.placeholder = re.compile(f"fsenv{nonce}x([0-9]+)x")

        def _mark(m: re.Match[str]) -> str:
            self.refs.append(_EnvRef(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1))
            return f"fsenv{nonce}x{len(self.refs) - 1}x"

        self.depth = 0
        super().__init__(_ENV_RE.sub(_mark, text))

    def _value(self, m: re.Match[str]) -> str:
        ref = self.refs[int(m.group(1))]
        value = os.environ.get(ref.name)
        if value is None:
            if ref.default is None:
                raise _unset(self.where, ref.line, ref.name)
            return ref.default
        return value

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"{self.where}:{mark.line + 1}:{mark.column + 1}: nested more than {MAX_DEPTH} levels deep "
                "(a pipeline config is a few levels deep; check the brackets and indentation)"
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def compose_scalar_node(self, anchor: Any) -> Any:
        event = self.peek_event()
        node = super().compose_scalar_node(anchor)
        if self.refs and self.placeholder.search(node.value):
            node.value = self.placeholder.sub(self._value, node.value)
            if event.tag in (None, "!"):
                # An unquoted value is typed as YAML types it (number, true/false, null); a quoted
                # one stays a string. Either way it stays one scalar: never YAML syntax.
                node.tag = self.resolve(yaml.ScalarNode, node.value, event.implicit)
        return node

    def construct_yaml_int(self, node: Any) -> Any:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses to convert more than 4300 digits
            raise yaml.constructor.ConstructorError(
                None, None, f"a number of {len(node.value)} digits is too long", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def read_yaml(text: str, *, where: str = "config") -> Any:
    """Parse one YAML document safely, with ``${VAR}`` / ``${VAR:-default}`` replaced from the
    environment inside scalars (the value is data: quotes, ``#``, ``:`` or newlines in it are kept
    as they are); ConfigError for malformed YAML, nesting deeper than :data:`MAX_DEPTH` or an unset
    variable without a default."""
    loader = _Loader(text, where)
    try:
        return loader.get_single_data()
    except ConfigError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}{pos}: malformed YAML: {clip(problem)}") from None
    except RecursionError:  # a guard behind MAX_DEPTH
        raise ConfigError(f"{where}: nested too deeply (check the brackets and indentation)") from None
    finally:
        loader.dispose()


def parse_config(
    data: Any, *, where: str = "config", flags: Mapping[str, str] | None = None
) -> PipelineConfig:
    """Validate a parsed mapping; raises ConfigError with every problem listed (``flags``: see
    :func:`~framesift.config.validation.validate_model`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping with 'sources:' at the top level")
    return validate_model(pipeline_model(), data, where=where, flags=flags)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of a config file: ConfigError when it is missing, unreadable, not UTF-8 or larger
    than :data:`MAX_CONFIG_BYTES` (refused before it is read)."""
    p = Path(path)
    where = str(p)
    too_big = ConfigError(
        f"{where}: config file is larger than {MAX_CONFIG_BYTES // 1024} KiB (a pipeline config is a few "
        "KiB; check that this is the right file)"
    )
    try:
        with p.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISDIR(st.st_mode):
                raise ConfigError(f"{where}: is a directory, not a config file (give a .yaml file)")
            if stat.S_ISREG(st.st_mode) and st.st_size > MAX_CONFIG_BYTES:
                raise too_big
            raw = fh.read(MAX_CONFIG_BYTES + 1)  # pipes have no size: read one byte past the cap
    except FileNotFoundError:
        raise ConfigError(f"{where}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: is a directory, not a config file (give a .yaml file)") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read config file ({exc.strerror or exc})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise too_big
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where}: not a text file in UTF-8 (undecodable byte at offset {exc.start}; save it as UTF-8)"
        ) from None


def load_config(path: str | os.PathLike[str]) -> PipelineConfig:
    """Read, parse YAML (environment variables substituted) and validate a pipeline config file."""
    where = str(Path(path))
    return parse_config(read_yaml(read_config_text(path), where=where), where=where)

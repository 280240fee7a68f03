"""The framesift error tree.

Every error a user can cause is one of these, carries one clear message naming the input and the
fix, and maps to a documented CLI exit code. Classes subclass the matching built-ins so callers can
catch either.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_INTERRUPTED = 130


class FramesiftError(Exception):
    """Base of all framesift errors."""

    exit_code = EXIT_RUNTIME


class ConfigError(FramesiftError, ValueError):
    """A configuration file or command-line value is invalid."""

    exit_code = EXIT_USAGE


class SourceIdTaken(ConfigError):
    """A source was added under an id that a running source already has (HTTP 409)."""


class NotAccepting(ConfigError):
    """The pipeline takes no new sources now: it is not running, or is stopping (HTTP 503)."""


class SourceError(FramesiftError, OSError):
    """A source cannot be opened or read (missing file, refused connection, not a video...)."""

    exit_code = EXIT_INPUT

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source

    def __str__(self) -> str:  # OSError.__str__ would otherwise reformat args
        return str(self.args[0]) if self.args else ""


class DecodeError(SourceError):
    """The container opened but its streams cannot be decoded (unsupported codec, corrupt data)."""


class EngineError(FramesiftError, RuntimeError):
    """A model engine failed to load, build or run."""

    def __init__(self, message: str, *, engine: str | None = None) -> None:
        super().__init__(message)
        self.engine = engine


class SinkError(FramesiftError, OSError):
    """A sink cannot deliver (disk full, endpoint down...)."""

    def __init__(self, message: str, *, sink: str | None = None, transient: bool = True) -> None:
        super().__init__(message)
        self.sink = sink
        self.transient = transient

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WorkerError(FramesiftError, RuntimeError):
    """A pipeline worker thread failed; ``__cause__`` holds the original exception."""

    def __init__(self, message: str, *, worker: str) -> None:
        super().__init__(message)
        self.worker = worker

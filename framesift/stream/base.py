"""The Source contract: ``open()``, ``frames()``, ``close()``."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from framesift.frame import Frame


@dataclass(frozen=True)
class StreamInfo:
    """What an opened stream holds, where the decoder knows it (None: unknown)."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None  # nominal frame rate
    codec: str | None = None


@dataclass
class SourceStats:
    """Counters a source keeps; read by metrics and /status without locks (plain ints)."""

    frames_decoded: int = 0
    frames_skipped: int = 0  # by target_fps / keyframes_only / start-end window
    decode_errors: int = 0
    reconnects: int = 0
    state: str = "new"
    last_frame_wallclock: float | None = None
    fps: float = 0.0
    extra: dict[str, int] = field(default_factory=dict)


class Source(abc.ABC):
    """A producer of frames.

    ``live`` sources (RTSP, HTTP live, devices) may disconnect and are reconnected by the capture
    worker; file sources end. ``frames()`` yields until the end of the stream and raises
    :class:`~framesift.errors.SourceError` on a failure it cannot recover from itself.
    """

    id: str
    live: bool = False
    #: What is read, for messages (a path, or a URL with credentials redacted).
    input_name: str = ""

    def __init__(self, source_id: str) -> None:
        self.id = source_id
        self.stats = SourceStats()
        #: Set by ``open()``: size, nominal rate and codec of the stream.
        self.stream_info = StreamInfo()
        #: Called by ``frames()`` between reads (at least once per packet); may raise to abort the
        #: iteration. The capture worker uses it for its watchdog and for prompt stops.
        self.check: Callable[[], None] | None = None

    def poll(self) -> None:
        """Run :attr:`check` if one is set (sources call this between blocking reads)."""
        if self.check is not None:
            self.check()

    @abc.abstractmethod
    def open(self) -> None:
        """Connect / open the container; raises SourceError with a clear message."""

    @abc.abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield decoded frames in presentation order."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection / file; idempotent and safe from another thread."""

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

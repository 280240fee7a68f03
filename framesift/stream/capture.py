"""The capture worker: one thread per source that fills its RingBuffer, reconnects and reports status."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator

from framesift.config.sources import ReconnectConfig
from framesift.errors import SourceError
from framesift.events import SourceStatus
from framesift.frame import Frame
from framesift.log import redact
from framesift.stream.base import Source
from framesift.stream.ringbuffer import RingBuffer

log = logging.getLogger(__name__)


class _Stalled(Exception):
    """Raised inside ``frames()`` by the watchdog check."""


class _StopRequested(Exception):
    """Raised inside ``frames()`` when stop() was called."""


def backoff_delay(cfg: ReconnectConfig, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before reconnect ``attempt`` (1-based): ``initial * multiplier**(attempt-1)`` capped at
    ``max_s``, then scaled by a random factor in ``[1 - jitter, 1 + jitter]`` (never above ``max_s``)."""
    base = min(cfg.max_s, cfg.initial_s * cfg.multiplier ** (attempt - 1))
    r = (rng or random).uniform(-cfg.jitter, cfg.jitter)
    return max(0.0, min(cfg.max_s, base * (1.0 + r)))


class CaptureWorker:
    """Runs ``source`` on its own thread (``capture:<id>``) and puts its frames into ``buffer``.

    States reported through ``on_status`` (:class:`~framesift.events.SourceStatus`): ``connecting``
    → ``up`` → (``eof`` for files | ``disconnected`` → ``reconnecting`` (attempt, delay_s) → ``connecting``
    ... for live sources) and finally ``failed`` (``.error`` is set) or ``stopped``. The watchdog
    (``watchdog_s``) emits ``stalled`` and restarts a live source that delivers no frame for that long.
    The buffer is closed when the worker finishes, whatever the reason.
    """

    def __init__(
        self,
        source: Source,
        buffer: RingBuffer[Frame],
        *,
        on_status: Callable[[SourceStatus], None],
        reconnect: ReconnectConfig | None = None,
        watchdog_s: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.source = source
        self.max_frames = max_frames
        self.buffer = buffer
        self.on_status = on_status
        self.reconnect = reconnect or ReconnectConfig()
        self.watchdog_s = watchdog_s
        self.error: BaseException | None = None
        self.state = "new"
        self.frames = 0  # frames put into the buffer (or offered, for drop policies)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture:{source.id}", daemon=True)
        self._last_frame = time.monotonic()
        self._rng = random.Random()

    # -- public API ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the worker to stop; returns at once. A blocked ``put`` is released by closing the
        buffer; a blocking read ends at the next packet or within the source's read timeout."""
        self._stop.set()
        self.buffer.close()
        try:
            self.source.close()
        except Exception as exc:  # pragma: no cover - close() must not raise
            log.debug("source %s: close failed: %s", self.source.id, exc)

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- internals ----------------------------------------------------------------------------
    def _emit(self, state: str, detail: str = "", *, attempt: int = 0, delay_s: float | None = None) -> None:
        self.state = state
        self.source.stats.state = state
        info = self.source.stream_info
        up = state == "up"
        event = SourceStatus(
            source=self.source.id,
            state=state,
            detail=redact(detail),
            attempt=attempt,
            delay_s=None if delay_s is None else round(delay_s, 3),
            frames=self.frames,
            input=redact(self.source.input_name) if up else None,
            width=info.width if up else None,
            height=info.height if up else None,
            fps=info.fps if up else None,
            codec=info.codec if up else None,
        )
        log.debug("source %s: %s %s", self.source.id, state, event.detail)
        try:
            self.on_status(event)
        except Exception:
            log.exception("source %s: on_status callback failed", self.source.id)

    def _check(self) -> None:
        if self._stop.is_set():
            raise _StopRequested
        if self.watchdog_s is not None and time.monotonic() - self._last_frame > self.watchdog_s:
            raise _Stalled

    def _fail(self, exc: BaseException) -> None:
        sid = self.source.id
        msg = str(exc)
        if not msg.startswith(f"source {sid!r}"):
            msg = f"source {sid!r}: {msg}"
        err: BaseException = type(exc)(msg) if isinstance(exc, SourceError) else SourceError(msg)
        if isinstance(err, SourceError):
            err.source = sid
        if err is not exc:
            err.__cause__ = exc
        self.error = err
        self._emit("failed", msg)

    def _run(self) -> None:
        src = self.source
        attempt = 0
        src.check = self._check
        try:
            while not self._stop.is_set():
                outcome, detail = self._session()
                if self._stop.is_set() or outcome == "stop":
                    break
                if outcome == "eof":
                    self._emit("eof", detail)
                    return
                if outcome == "fatal":
                    return
                # A live source lost its stream: back off and retry.
                if outcome == "got_frames":
                    attempt = 0
                attempt += 1
                give_up = self.reconnect.give_up_after
                if give_up is not None and attempt > give_up:
                    self._fail(SourceError(f"gave up after {give_up} reconnect attempts (last: {detail})"))
                    return
                delay = backoff_delay(self.reconnect, attempt, self._rng)
                src.stats.reconnects += 1
                self._emit("reconnecting", detail, attempt=attempt, delay_s=delay)
                if self._stop.wait(delay):
                    break
            self._emit("stopped")
        except BaseException as exc:  # a bug: never die silently
            log.exception("source %s: capture crashed", src.id)
            self._fail(exc)
        finally:
            src.check = None
            try:
                src.close()
            except Exception as exc:
                log.debug("source %s: close failed: %s", src.id, exc)
            self.buffer.close()

    def _session(self) -> tuple[str, str]:
        """One open-and-read cycle. Returns (outcome, detail); outcome is ``eof`` (a file ended),
        ``got_frames``/``no_frames`` (a live source dropped after/without frames), ``stop`` or ``fatal``."""
        src = self.source
        self._emit("connecting", src.input_name)
        got = False
        try:
            src.open()
            if self._stop.is_set():
                return "stop", ""
            self._emit("up", src.input_name)
            self._last_frame = time.monotonic()
            frames: Iterator[Frame] = src.frames()
            try:
                for frame in frames:
                    got = True
                    self._last_frame = time.monotonic()
                    self.frames += 1
                    self.buffer.put(frame)
                    if self._stop.is_set():
                        return "stop", ""
                    if self.max_frames is not None and self.frames >= self.max_frames:
                        return "eof", f"{self.frames} frames (max_frames reached)"
            finally:
                close = getattr(frames, "close", None)
                if close is not None:
                    close()
            if self._stop.is_set():
                return "stop", ""
            if not src.live:
                return "eof", f"{src.stats.frames_decoded} frames decoded"
            self._emit("disconnected", "end of stream (treated as a disconnect for a live source)")
            return ("got_frames" if got else "no_frames"), "end of stream"
        except _StopRequested:
            return "stop", ""
        except _Stalled:
            detail = f"no frame for {self.watchdog_s:g} s"
            self._emit("stalled", detail)
            return ("got_frames" if got else "no_frames"), detail
        except SourceError as exc:
            if self._stop.is_set():
                return "stop", ""
            if not src.live:
                self._fail(exc)
                return "fatal", str(exc)
            self._emit("disconnected", str(exc))
            return ("got_frames" if got else "no_frames"), str(exc)
        finally:
            try:
                src.close()
            except Exception as exc:
                log.debug("source %s: close failed: %s", src.id, exc)

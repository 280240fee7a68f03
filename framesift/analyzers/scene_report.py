"""What the ``scene_change`` analyzer's ``report`` option adds, per source: the cut signal in
chunks, a small picture of each scene's opening, each scene's label (one frame per second, when
labels are set), and the source's frame count and time span at its end — all as
:class:`~framesift.events.SceneSignal` events, which scene-report sinks turn into plots, thumbnails
and scene lists."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from framesift.analyzers.scene_signal import label_of, thumb
from framesift.events import Event, SceneChange, SceneSignal
from framesift.frame import Frame

CHUNK_ROWS = 256  # rows per SceneSignal event
FIRST_PICTURE_S = 1.0  # scene 1's picture: one second in (past a fade-in), unless a scene opens sooner
LABEL_EVERY_S = 1.0


class SceneReporter:
    """Report bookkeeping for one source, bounded: ``max_delay_frames`` recent frames (an event
    leaves the analyzer at most that late), one chunk of rows, and one label accumulator.

    ``embed`` turns frames into label embeddings (with ``text_emb`` / ``labels``); None: no labels.
    """

    def __init__(
        self,
        source: str,
        *,
        max_delay_frames: int,
        picture_width: int = 256,
        embed: Callable[[list[Frame]], np.ndarray] | None = None,
        text_emb: np.ndarray | None = None,
        labels: list[str] | None = None,
    ) -> None:
        self.source = source
        self.max_delay = max_delay_frames
        self.picture_width = picture_width
        self.recent: deque[Frame] = deque(maxlen=max_delay_frames + 8)
        self.rows: list[tuple[int, float, float, float]] = []
        self.pictures: dict[int, np.ndarray] = {}
        self.closed_labels: dict[int, str] = {}
        self.frames = 0  # the last frame's number + 1: frames skipped (corrupt, sampled out) count
        self.first_time: float | None = None
        self.first_index = 0
        self.last_time: float | None = None
        self.steps: deque[float] = deque(maxlen=16)  # times between recent frames
        self.boundaries = 0
        self.first_picture_taken = False
        self._embed = embed if text_emb is not None and labels else None
        self._text_emb, self._labels = text_emb, list(labels or [])
        self._scene_start = 0  # first frame of the scene that is open
        self._acc: np.ndarray | None = None  # sum of its label embeddings known to be inside it
        self._samples: deque[tuple[int, np.ndarray]] = deque()  # recent ones, scene not yet known
        self._next_sample: float | None = None

    # -- per frame -------------------------------------------------------------------------------

    def frame(self, frame: Frame) -> None:
        """Every frame the analyzer sees, in order."""
        t = frame.seconds
        if self.first_time is None:
            self.first_time, self.first_index = t, frame.index
            self._scene_start = frame.index
            self.pictures[frame.index] = self._picture(frame)
        elif not self.first_picture_taken and self.boundaries == 0 and t - self.first_time >= FIRST_PICTURE_S:
            self.first_picture_taken = True
            self.pictures[self.first_index] = self._picture(frame)
        if self.last_time is not None and t > self.last_time:
            self.steps.append(t - self.last_time)
        self.last_time = t
        self.frames = frame.index + 1
        self.recent.append(frame)
        if self._embed is not None:
            self._sample(frame, t)

    def row(self, index: int, time: float, distance: float, threshold: float) -> None:
        """The cut detector decided frame ``index``."""
        self.rows.append((index, round(time, 6), round(distance, 6), round(threshold, 6)))

    def boundary(self, event: SceneChange) -> None:
        """A scene opens at ``event.frame_index``: take its picture, close the previous scene's label."""
        self.boundaries += 1
        self.first_picture_taken = True
        want = max(event.frame_index, event.transition_end or event.frame_index) + 2
        best = None
        for f in self.recent:
            if f.index <= want:
                best = f
        if best is None and self.recent:
            best = self.recent[0]
        if best is not None:
            self.pictures[event.frame_index] = self._picture(best)
        if self._embed is not None:
            self._close_scene(event.frame_index)

    def _picture(self, frame: Frame) -> np.ndarray:
        return thumb(np.asarray(frame.image), self.picture_width)

    # -- labels ----------------------------------------------------------------------------------

    def _sample(self, frame: Frame, t: float) -> None:
        if self._next_sample is not None and t < self._next_sample:
            return
        self._next_sample = t + LABEL_EVERY_S
        assert self._embed is not None
        vec = np.asarray(self._embed([frame]), np.float32)[0]
        self._samples.append((frame.index, vec))
        # A boundary yet to come lies after (newest frame - max delay): older samples are settled.
        while self._samples and self._samples[0][0] < frame.index - self.max_delay - 1:
            self._add(self._samples.popleft()[1])

    def _add(self, vec: np.ndarray) -> None:
        self._acc = vec.copy() if self._acc is None else self._acc + vec

    def _close_scene(self, start_of_next: int) -> None:
        while self._samples and self._samples[0][0] < start_of_next:
            self._add(self._samples.popleft()[1])
        self._label_scene()
        self._scene_start, self._acc = start_of_next, None

    def _label_scene(self) -> None:
        if self._acc is not None and self._text_emb is not None:
            self.closed_labels[self._scene_start] = label_of(self._acc[None, :], self._text_emb, self._labels)

    # -- events ----------------------------------------------------------------------------------

    def report(self, events: list[Event], *, final: bool) -> None:
        """Note the boundaries among ``events``, and add a SceneSignal to them when one is due."""
        for ev in events:
            if isinstance(ev, SceneChange):
                self.boundary(ev)
        signal = self.take(final=final)
        if signal is not None:
            events.append(signal)

    def take(self, *, final: bool = False) -> SceneSignal | None:
        """A SceneSignal when a chunk is full (or ``final``: the source ended), else None."""
        if not final and len(self.rows) < CHUNK_ROWS:
            return None
        if final and self._embed is not None:
            while self._samples:
                self._add(self._samples.popleft()[1])
            self._label_scene()
        end = None
        if final and self.last_time is not None:  # the last frame lasts the shortest recent step
            end = self.last_time + min(self.steps, default=0.0)
        ev = SceneSignal(
            source=self.source,
            rows=tuple(self.rows),
            labels=dict(self.closed_labels),
            final=final,
            frames=self.frames if final else 0,
            start_time=self.first_time if final else None,
            end_time=end,
            pictures=dict(self.pictures),
        )
        self.rows, self.closed_labels, self.pictures = [], {}, {}
        return ev

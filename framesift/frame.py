"""The Frame: one decoded image with exact presentation time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """An immutable decoded frame.

    ``pts * time_base`` is the exact presentation time in seconds; ``index`` counts decoded frames of
    the source (before any subsampling, so gaps show what ``target_fps`` skipped); ``wallclock`` is
    the capture time (``time.time()``) for live sources and decode time for files. ``image`` is an
    ``(H, W, 3)`` uint8 array in RGB unless the source was configured for another pixel format; it is
    marked read-only. A source that hands out small analysis frames may also give the full-size
    picture on demand (``meta[PICTURE_KEY]``, see :func:`picture`).
    """

    source_id: str
    index: int
    pts: int
    time_base: Fraction
    wallclock: float
    image: Any  # np.ndarray on the CPU path; a CUDA tensor on the GPU path
    keyframe: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.image, np.ndarray) and self.image.flags.writeable:
            self.image.flags.writeable = False

    @property
    def time(self) -> Fraction:
        """Exact presentation time in seconds."""
        return self.pts * self.time_base

    @property
    def seconds(self) -> float:
        """Presentation time in seconds as a float (for display and JSON)."""
        return float(self.pts * self.time_base)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    def __repr__(self) -> str:
        shape = getattr(self.image, "shape", None)
        return (
            f"Frame(source_id={self.source_id!r}, index={self.index}, pts={self.pts}, "
            f"time_base={self.time_base}, seconds={self.seconds:.3f}, shape={shape})"
        )


PICTURE_KEY = "picture"  # Frame.meta key of a Picture: the full-size image behind a small one


class Picture:
    """A frame's full-size picture, converted from the decoded frame the first time it is asked for
    (then held, and the decoded frame let go). A source that decodes small analysis frames attaches
    one, so that the few frames kept are converted at full size and the rest never are. Pickling
    converts it (a decoded frame does not cross processes)."""

    __slots__ = ("_image", "_make")

    def __init__(self, make: Callable[[], Any] | None, image: Any = None) -> None:
        self._make, self._image = make, image

    def __call__(self) -> Any:
        if self._image is None:
            assert self._make is not None
            image = self._make()
            if isinstance(image, np.ndarray):
                image.flags.writeable = False
            self._image, self._make = image, None
        return self._image

    def __reduce__(self) -> tuple[Any, ...]:
        return (Picture, (None, self()))


def picture(frame: Frame) -> Any:
    """The frame's full-size image: its :class:`Picture` where the source attached one (the frame
    itself is a small analysis frame), else ``frame.image``."""
    full = frame.meta.get(PICTURE_KEY)
    return full() if full is not None else frame.image


@dataclass
class Clock:
    """Presentation time made monotonic across pts resets (reconnects, loops, segments joined with
    ``cat``): a time that goes back continues one frame step after the last one."""

    offset: float = 0.0
    last_raw: float | None = None
    step: float = 0.0  # the last forward step between two times

    def __call__(self, raw: float) -> float:
        if self.last_raw is not None:
            if raw < self.last_raw:
                self.offset += self.last_raw - raw + self.step
            elif raw > self.last_raw:
                self.step = raw - self.last_raw
        self.last_raw = raw
        return raw + self.offset


@dataclass(frozen=True)
class EncodedImage:
    """A picture already compressed (the collector holds its candidates as JPEG): the frame store
    writes these bytes as they are where its format matches and its quality is at least this one,
    so a kept frame is compressed once, not decoded and compressed again."""

    data: bytes
    format: str  # "jpeg"
    quality: int
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)

    def decode(self) -> np.ndarray:
        """The picture as an RGB uint8 array."""
        import cv2

        bgr = cv2.imdecode(np.frombuffer(self.data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"an encoded {self.format} image of {len(self.data)} bytes does not decode")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

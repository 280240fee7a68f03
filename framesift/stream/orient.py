"""Display orientation: pictures shown upright as players show them.

Phone videos carry a display matrix (stored landscape, shown portrait), and JPEG photos an EXIF
orientation, which FFmpeg exports the same way. FFmpeg's command line, OpenCV and players rotate by
it; the decoders here do too, so thumbnails, kept frames and model inputs stand upright. Only the
rotation is applied (in quarter turns, as FFmpeg's ``autorotate``); a mirrored orientation keeps
its mirror.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: FFmpeg filters that turn a picture by 1, 2 or 3 counter-clockwise quarter turns
TURN_FILTERS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("transpose", "cclock"),),
    2: (("hflip", ""), ("vflip", "")),
    3: (("transpose", "clock"),),
}


def quarter_turns(vf: Any) -> int:
    """Counter-clockwise quarter turns (0-3) that show decoded frame ``vf`` upright, from its
    display matrix; 0 when it has none or it cannot be read."""
    try:
        degrees = float(vf.rotation)
    except (AttributeError, ValueError, TypeError):
        return 0
    return round(degrees / 90) % 4


def coded_target(width: int | None, height: int | None, turns: int) -> tuple[int | None, int | None]:
    """The size to scale the stored picture to so that, turned, it is ``width`` x ``height``."""
    return (height, width) if turns % 2 else (width, height)


def upright(image: np.ndarray, turns: int) -> np.ndarray:
    """``image`` (rows, columns[, channels]) turned by ``turns`` counter-clockwise quarter turns,
    contiguous."""
    if turns % 4 == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, turns))

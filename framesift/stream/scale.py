"""Cheap downscaling of decoded 4:2:0 frames to small RGB analysis frames (the ``fast`` scaler)."""

from __future__ import annotations

import cv2
import numpy as np
from av.video.frame import VideoFrame


def _shrink(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Integer-factor shrink (rows sampled, columns averaged: cheap), then bilinear to the exact size."""
    ph, pw = plane.shape
    k = max(1, min(pw // width, ph // height))
    if k > 1:
        rows = plane[::k]
        plane = cv2.resize(rows, (pw // k, rows.shape[0]), interpolation=cv2.INTER_AREA)
    if plane.shape != (height, width):
        plane = cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR)
    return plane


def small_rgb(vf: VideoFrame, width: int, height: int) -> np.ndarray:
    """``vf`` scaled to ``width`` x ``height`` RGB.

    For 4:2:0 frames the planes are read in place (no copy), shrunk by an integer factor (rows
    sampled, columns averaged) and converted to RGB at the small size: several times cheaper than
    swscale's area filter at 1280x720 → 256x144. Other pixel formats go through swscale.
    """
    if vf.format.name not in ("yuv420p", "yuvj420p") or vf.width % 2 or vf.height % 2:
        return vf.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
    fw, fh = vf.width, vf.height
    planes = []
    for i, (pw, ph) in enumerate(((fw, fh), (fw // 2, fh // 2), (fw // 2, fh // 2))):
        pl = vf.planes[i]
        arr = np.frombuffer(memoryview(pl), np.uint8).reshape(-1, pl.line_size)[:ph, :pw]
        planes.append(_shrink(arr, width, height))
    return cv2.cvtColor(np.dstack(planes), cv2.COLOR_YUV2RGB)

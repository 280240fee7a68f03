"""Helpers shared by the web routes."""

from __future__ import annotations

import cv2
import numpy as np


def jpeg(image: np.ndarray, max_side: int = 320, quality: int = 80) -> bytes:
    """An RGB (or gray) array as a JPEG no wider or taller than ``max_side``."""
    img = np.asarray(image)
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w, 1))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode the frame as JPEG")
    return bytes(buf)

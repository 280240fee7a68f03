"""Tiny random-weight open_clip architectures and decoded test frames for the engine tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data"
TINY = "fs-tiny-clip"  # ViT: width 64, 2 layers, image 64, patch 16; text width 64, 2 layers; dim 32
TINY_D48 = "fs-tiny-clip-d48"  # same shapes, embedding dim 48 (for mismatch tests)
TINY_D512 = "fs-tiny-clip-d512"  # same shapes, embedding dim 512 (YOLO-World's text width)


def register_tiny() -> None:
    """Make the tiny configs known to open_clip (idempotent)."""
    import open_clip

    if any(open_clip.get_model_config(n) is None for n in (TINY, TINY_D48, TINY_D512)):
        open_clip.add_model_config(DATA)


def tiny_model(seed: int = 0, name: str = TINY) -> Any:
    """A random-initialised tiny CLIP (eval, fp32, CPU); the same seed gives the same weights."""
    import open_clip
    import torch

    register_tiny()
    torch.manual_seed(seed)
    return open_clip.create_model(name, pretrained=None).eval()


def decoded_frames(path: Path, n: int | None = None) -> list[np.ndarray]:
    """Decode a clip with PyAV into RGB uint8 arrays."""
    import av

    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if n is not None and len(out) >= n:
                break
    return out


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.asarray((a * b).sum(axis=1))


register_tiny()  # importing this module makes the tiny architectures known by name

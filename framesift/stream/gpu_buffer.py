"""Bounding a source's ring buffer by GPU memory when its frames live on the GPU.

:class:`~framesift.stream.ringbuffer.RingBuffer` bounds the *count* of frames. A CUDA frame of a
1080p RGB source holds 6.2 MB of device memory, so 100 sources x 32 frames would pin 20 GB. The
pipeline takes ``min(buffer.capacity, capacity_for_budget(gpu_buffer_mb, ...))`` for GPU sources.
"""

from __future__ import annotations

from typing import Any

_CHANNELS = {"rgb24": 3, "bgr24": 3, "gray": 1}


def frame_nbytes(width: int, height: int, pixel_format: str = "rgb24") -> int:
    """Bytes of one decoded output frame (uint8, packed)."""
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    try:
        return width * height * _CHANNELS[pixel_format]
    except KeyError:
        raise ValueError(f"unknown pixel_format {pixel_format!r} (use {', '.join(_CHANNELS)})") from None


def image_nbytes(image: Any) -> int:
    """Bytes held by an image: a numpy array (``nbytes``) or a torch tensor (``numel * element_size``)."""
    if hasattr(image, "element_size"):
        return int(image.numel()) * int(image.element_size())
    return int(image.nbytes)


def capacity_for_budget(
    budget_mb: float,
    width: int,
    height: int,
    pixel_format: str = "rgb24",
    *,
    max_capacity: int | None = None,
    min_capacity: int = 1,
) -> int:
    """How many frames of ``width x height`` fit in ``budget_mb`` MiB (at least ``min_capacity``,
    at most ``max_capacity``): the ring buffer capacity of one GPU source."""
    if budget_mb <= 0:
        raise ValueError(f"gpu_buffer_mb must be > 0, got {budget_mb}")
    if min_capacity < 1:
        raise ValueError(f"min_capacity must be >= 1, got {min_capacity}")
    n = int(budget_mb * 1024 * 1024) // frame_nbytes(width, height, pixel_format)
    n = max(min_capacity, n)
    return min(n, max_capacity) if max_capacity is not None else n

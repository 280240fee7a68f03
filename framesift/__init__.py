"""framesift: real-time video stream processor for foundation models."""

from framesift.frame import Frame

__all__ = ["Frame", "__version__"]
__version__ = "0.1.0"

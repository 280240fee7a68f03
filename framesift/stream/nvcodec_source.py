"""``decoder: nvcodec`` — NVIDIA's PyNvVideoCodec: NVDEC surfaces → torch through DLPack, on the GPU.

Kept small on purpose: PyNvVideoCodec demuxes (``CreateDemuxer``) and decodes (``CreateDecoder`` with
``usedevicememory=True``); each decoded NV12 surface is wrapped with ``torch.from_dlpack`` (no copy),
converted to RGB (8 or 16-bit, 4:2:0, 4:2:2 or 4:4:4) and resized with torch ops (:mod:`framesift.stream.gpu_color`) on the GPU. With
``gpu_frames=True`` the Frame's image is that CUDA tensor (``meta["device"] == "cuda"``); otherwise the
final, already resized image is copied to the host once (``"cpu"``).

Limits (say them, don't hide them): time is counted in frames at the demuxer's frame rate (constant
frame rate assumed: ``pts = index``, ``time_base = 1/fps``); ``keyframes_only``, ``start``/``end`` and
device inputs are not supported (the factory picks ``pyav-cuda`` for those); PyNvVideoCodec's demuxer
has no read timeout, so a stalled network stream blocks until it closes — prefer ``pyav-cuda`` for
RTSP/HTTP. Colour space and range come from the demuxer (``ColorSpace()``/``ColorRange()``;
unspecified: BT.709 from 720 lines up, else BT.601, limited range); each surface's format
(NV12, P016, NV16/P216, YUV444/YUV444_16Bit) and size come from the surface itself.
Importing this module imports neither PyNvVideoCodec nor torch; ``open()`` does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from framesift.errors import SourceError
from framesift.frame import Frame
from framesift.log import redact
from framesift.stream._errors import check_local_file
from framesift.stream.base import Source
from framesift.stream.sampling import FpsSampler, output_size, rate_fraction
from framesift.stream.sources.file import FileSourceConfig
from framesift.stream.sources.http import HttpSourceConfig
from framesift.stream.sources.rtsp import RtspSourceConfig

if TYPE_CHECKING:
    from framesift.stream.gpu_color import Matrix

log = logging.getLogger(__name__)

NvCodecConfig = FileSourceConfig | RtspSourceConfig | HttpSourceConfig


def unsupported_features(cfg: Any) -> list[str]:
    """Config features :class:`NvCodecSource` does not implement (empty: it can run ``cfg``)."""
    out = []
    if getattr(cfg, "type", None) not in ("file", "rtsp", "http"):
        out.append(f"{getattr(cfg, 'type', '?')} inputs")
    if getattr(cfg, "keyframes_only", False):
        out.append("keyframes_only")
    if getattr(cfg, "start", None) is not None or getattr(cfg, "end", None) is not None:
        out.append("start/end windows")
    return out


class NvCodecSource(Source):
    """Decodes one video stream on NVDEC with PyNvVideoCodec (see the module docstring)."""

    decoder_name = "nvcodec"

    def __init__(
        self, cfg: NvCodecConfig, source_id: str, *, gpu_frames: bool = False, device: int = 0
    ) -> None:
        super().__init__(source_id)
        missing = unsupported_features(cfg)
        if missing:
            raise SourceError(
                f"decoder 'nvcodec' does not support {', '.join(missing)}; use decoder: pyav-cuda or pyav",
                source=source_id,
            )
        self.cfg = cfg
        self.url = cfg.path if isinstance(cfg, FileSourceConfig) else cfg.url
        self.live = not isinstance(cfg, FileSourceConfig)
        self.input_name = redact(self.url)
        self.gpu_frames = gpu_frames
        self.device_index = device
        self._stop = threading.Event()
        self._nvc: Any = None
        self._dmx: Any = None
        self._dec: Any = None
        self._index = 0

    def open(self) -> None:
        self._stop.clear()
        if isinstance(self.cfg, FileSourceConfig) and "://" not in self.cfg.path:
            check_local_file(self.cfg.path)
        try:
            import PyNvVideoCodec as nvc
        except ImportError as exc:
            raise SourceError(
                f"{self.input_name}: decoder 'nvcodec' needs PyNvVideoCodec ({exc}); "
                "pip install PyNvVideoCodec, or use decoder: auto",
                source=self.id,
            ) from None
        self._nvc = nvc
        self._dmx, self._dec = self._create()

    def _create(self) -> tuple[Any, Any]:
        nvc = self._nvc
        try:
            dmx = nvc.CreateDemuxer(filename=self.url)
            dec = nvc.CreateDecoder(
                gpuid=self.device_index,
                codec=dmx.GetNvCodecId(),
                cudacontext=0,  # the device's primary context, shared with torch
                cudastream=0,
                usedevicememory=True,
            )
        except Exception as exc:
            raise SourceError(
                f"{self.input_name}: PyNvVideoCodec could not open it ({redact(str(exc))}); "
                "check the input, or use decoder: pyav-cuda / pyav",
                source=self.id,
            ) from None
        return dmx, dec

    def frames(self) -> Iterator[Frame]:
        if self._dmx is None:
            if self._stop.is_set():
                return
            raise SourceError(f"{self.input_name}: source is not open (call open() first)", source=self.id)
        import torch

        from framesift.stream.gpu_color import nv12_to_image, split_surface

        dmx, dec = self._dmx, self._dec
        fps = float(dmx.FrameRate() or 0) or 25.0
        rate = rate_fraction(fps)
        tb = Fraction(1) / rate
        matrix, full_range = demuxer_colour(dmx, int(dmx.Height()))
        sampler = FpsSampler(self.cfg.target_fps)
        realtime = isinstance(self.cfg, FileSourceConfig) and self.cfg.realtime
        loop = isinstance(self.cfg, FileSourceConfig) and self.cfg.loop
        pace_w0: float | None = None
        while True:
            for packet in dmx:
                self.poll()
                if self._stop.is_set():
                    return
                for decoded in dec.Decode(packet):
                    idx = self._index
                    self._index += 1
                    self.stats.frames_decoded += 1
                    t = idx * tb
                    if not sampler.keep(t):
                        self.stats.frames_skipped += 1
                        continue
                    if realtime:
                        if pace_w0 is None:
                            pace_w0 = time.monotonic() - float(t)
                        delay = pace_w0 + float(t) - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            return
                    # one surface on the GPU, no copy: (rows, W), uint8 or uint16 by its format
                    surface = torch.from_dlpack(decoded)
                    y, uv = split_surface(surface, str(decoded.format))
                    h, w = int(y.shape[0]), int(y.shape[1])  # the surface's size (it may change)
                    image: Any = nv12_to_image(
                        y,
                        uv,
                        pixel_format=self.cfg.pixel_format,
                        size=output_size(w, h, self.cfg.width, self.cfg.height),
                        matrix=matrix,
                        full_range=full_range,
                    )
                    if not self.gpu_frames:
                        image = image.cpu().numpy()
                    now = time.time()
                    self.stats.last_frame_wallclock = now
                    yield Frame(
                        source_id=self.id,
                        index=idx,
                        pts=idx,
                        time_base=tb,
                        wallclock=now,
                        image=image,
                        meta={"device": "cuda" if self.gpu_frames else "cpu", "decoded_on": "nvdec"},
                    )
                    if self._stop.is_set():
                        return
            if not loop or self._stop.is_set():
                return
            dmx, dec = self._create()  # replay from the start; time runs on
            self._dmx, self._dec = dmx, dec

    def close(self) -> None:
        """Stop reading; the decoder is released when the reading generator ends."""
        self._stop.set()
        self._dmx = self._dec = None


def colour_of(space: str, crange: str, height: int) -> tuple[Matrix, bool]:
    """Matrix and range from the demuxer's ``ColorSpace()``/``ColorRange()`` names (VPF/PyNvVideoCodec
    enums: ``ColorSpace.BT_601 | BT_709 | UNSPEC``, ``ColorRange.MPEG | JPEG | UDEF``). Unspecified
    colour space: BT.709 from 720 lines up, else BT.601; unspecified range: limited (MPEG)."""
    s = space.rsplit(".", 1)[-1].upper().replace("_", "")
    matrix: Matrix
    if "2020" in s:
        matrix = "bt2020"
    elif "709" in s:
        matrix = "bt709"
    elif "601" in s or "470" in s or "170" in s:
        matrix = "bt601"
    else:
        matrix = "bt709" if height >= 720 else "bt601"
    return matrix, crange.rsplit(".", 1)[-1].upper() == "JPEG"


def demuxer_colour(dmx: Any, height: int) -> tuple[Matrix, bool]:
    """:func:`colour_of` for a PyNvVideoCodec demuxer; a build without these calls counts as
    unspecified (logged once)."""
    try:
        space, crange = str(dmx.ColorSpace()), str(dmx.ColorRange())
    except AttributeError:
        log.info("PyNvVideoCodec's demuxer does not report colour space/range; assuming unspecified")
        space, crange = "UNSPEC", "UDEF"
    return colour_of(space, crange, height)

"""``decoder: pyav-cuda`` — FFmpeg's NVDEC hwaccel through PyAV, frames optionally kept on the GPU.

Everything but decoding is :class:`~framesift.stream.pyav_source.PyAVSource` (timeouts, reconnects,
``target_fps``, ``keyframes_only``, windows, realtime replay, loops). PyAV >= 18 can leave decoded
surfaces on the device (``HWAccel(is_hw_owned=True)``) and export their NV12 planes through DLPack:

- ``gpu_frames=True``: planes → torch (zero copy) → RGB + resize with torch ops on the GPU; the
  Frame's image is a CUDA tensor ``(H, W, 3)`` uint8 and the surface returns to FFmpeg's pool as soon
  as the conversion is done. No host copy. ``meta = {"device": "cuda", "decoded_on": "nvdec"}``.
- ``gpu_frames=False`` (default: the CPU engines and sinks take numpy): FFmpeg downloads each surface
  to system memory (``av_hwframe_transfer_data``) and swscale converts it as on the CPU path.
  ``meta = {"device": "cpu", "decoded_on": "nvdec"}``.

A stream NVDEC cannot decode falls back to FFmpeg's software decoder (``allow_software_fallback``);
that is judged per frame (at open or later), logged once per opened stream, and those frames say
``"decoded_on": "cpu"``. Importing this module does not import
torch; only ``gpu_frames=True`` does, on the first frame.
"""

from __future__ import annotations

import logging
from typing import Any

from av.container import InputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from framesift.errors import SourceError
from framesift.stream.orient import coded_target
from framesift.stream.pyav_source import PyAVConfig, PyAVSource
from framesift.stream.sampling import output_size

log = logging.getLogger(__name__)


class PyAVCudaSource(PyAVSource):
    """A :class:`PyAVSource` decoding on NVDEC (see the module docstring)."""

    decoder_name = "pyav-cuda"

    def __init__(self, cfg: PyAVConfig, source_id: str, *, gpu_frames: bool = False, device: int = 0) -> None:
        super().__init__(cfg, source_id)
        self.gpu_frames = gpu_frames
        self.device_index = device
        self.hw_decoding = False  # the last frame came from NVDEC
        self._cc: Any = None  # the open stream's codec context
        self._seen_hw = False
        self._warned_cpu = False

    def _open_kwargs(self) -> dict[str, Any]:
        import av.codec
        from av.codec.hwaccel import HWAccel

        def make() -> HWAccel:
            return HWAccel(
                device_type="cuda",
                device=str(self.device_index) if self.device_index else None,
                allow_software_fallback=True,
                # Every source shares the device's primary context (torch's too) instead of
                # creating its own: a CUDA context costs hundreds of MB, times 100 streams.
                options={"primary_ctx": "1"},
                is_hw_owned=self.gpu_frames,
            )

        try:  # open the CUDA device once up front, so a missing driver is not reported as a bad input
            make().create(av.codec.Codec("h264", "r"))
        except Exception as exc:
            raise SourceError(
                f"{self.input_name}: decoder 'pyav-cuda' could not open CUDA device {self.device_index} "
                f"({type(exc).__name__}: {exc}); use decoder: auto or pyav",
                source=self.id,
            ) from None
        return {"hwaccel": make()}

    def _setup_stream(self, container: InputContainer) -> VideoStream:
        stream = super()._setup_stream(container)
        # ``codec_context.is_hwaccel`` only says a hwaccel was *requested* (PyAV: ``hwaccel_ctx is
        # not None``); whether NVDEC really decodes is known per frame (see ``_frame_meta``).
        self._cc = stream.codec_context
        self.hw_decoding = False
        self._seen_hw = False
        self._warned_cpu = False
        return stream

    def _convert(self, f: VideoFrame, turns: int = 0) -> Any:
        if f.format.name != "cuda":  # downloaded surface or software fallback: the CPU path
            return super()._convert(f, turns)
        sw = f.sw_format.name if f.sw_format is not None else "?"
        if sw not in GPU_SURFACES:  # 4:4:4 and others: let FFmpeg download and convert
            return super()._convert(f, turns)
        import torch.utils.dlpack

        from framesift.stream.gpu_color import matrix_for, nv12_to_image

        # PyAV refuses a consumer stream (it does not synchronise); FFmpeg's NVDEC copies run on the
        # legacy default stream, which orders them before torch's work on any blocking stream.
        y = torch.utils.dlpack.from_dlpack(f.planes[0].__dlpack__())
        uv = torch.utils.dlpack.from_dlpack(f.planes[1].__dlpack__())
        img = nv12_to_image(
            y,
            uv,
            pixel_format=self.cfg.pixel_format,
            size=output_size(f.width, f.height, *coded_target(self.cfg.width, self.cfg.height, turns)),
            matrix=matrix_for(f.colorspace),
            full_range=f.color_range == 2,  # AVCOL_RANGE_JPEG
        )
        return torch.rot90(img, turns, (0, 1)).contiguous() if turns else img

    def _frame_meta(self, f: VideoFrame, image: Any) -> dict[str, Any]:
        cc = self._cc
        hw = decoded_on_nvdec(f.format.name, cc.format.name if cc is not None and cc.format else None)
        if hw:
            self._seen_hw = True
        elif not self._warned_cpu:
            self._warned_cpu = True
            when = "after decoding on NVDEC" if self._seen_hw else "from the first frame"
            log.warning(
                "%s: NVDEC is not decoding this %s stream (%s); FFmpeg decodes it on the CPU",
                self.input_name,
                cc.name if cc is not None else "video",
                when,
            )
        if not hw:
            self._count("software_fallback_frames")
        self.hw_decoding = hw
        on_gpu = type(image).__module__.startswith("torch") and getattr(image, "is_cuda", False)
        return {"device": "cuda" if on_gpu else "cpu", "decoded_on": "nvdec" if hw else "cpu"}


#: NVDEC surface formats converted on the GPU (PyAV 18 exports these through DLPack).
GPU_SURFACES = frozenset({"nv12", "p010le", "p016le"})


def decoded_on_nvdec(frame_format: str, codec_format: str | None) -> bool:
    """Whether a frame PyAV returned was decoded by NVDEC.

    A frame left on the GPU has format ``cuda``. A frame downloaded to host memory has a software
    format either way, so the decoder's own output format decides: FFmpeg's ``get_format`` callback
    sets the codec context's ``pix_fmt`` to ``cuda`` while NVDEC decodes, and to a software format
    once it has fallen back (``allow_software_fallback``; PyAV's ``_transfer_hwframe`` returns such
    frames untouched).
    """
    return frame_format == "cuda" or codec_format == "cuda"

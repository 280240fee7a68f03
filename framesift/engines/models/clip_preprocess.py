"""open_clip's eval transform (resize, centre crop, normalise) as batched tensor operations.

Equal to ``open_clip.image_transform(..., is_train=False)`` applied to PIL images: torchvision's
output-size rule, bicubic with antialiasing (torch's uint8 CPU kernel is a port of Pillow's), the
same crop offsets, 8-bit rounding, then the model's mean/std. Frames of equal size are resized
together; nothing goes through PIL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from framesift.errors import EngineError


@dataclass(frozen=True)
class PreprocessCfg:
    size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    @classmethod
    def from_open_clip(cls, cfg: Mapping[str, Any]) -> PreprocessCfg:
        size = cfg.get("size", 224)
        hw = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        mean = cfg.get("mean") or (0.48145466, 0.4578275, 0.40821073)
        std = cfg.get("std") or (0.26862954, 0.26130258, 0.27577711)
        mean = tuple(mean) * 3 if len(tuple(mean)) == 1 else tuple(mean)
        std = tuple(std) * 3 if len(tuple(std)) == 1 else tuple(std)
        interp = cfg.get("interpolation") or "bicubic"
        return cls(
            size=hw,
            mean=(float(mean[0]), float(mean[1]), float(mean[2])),
            std=(float(std[0]), float(std[1]), float(std[2])),
            interpolation="bilinear" if interp == "bilinear" else "bicubic",
            resize_mode=cfg.get("resize_mode") or "shortest",
            fill_color=int(cfg.get("fill_color") or 0),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "resize_mode": self.resize_mode,
            "fill_color": self.fill_color,
        }


def resized_size(h: int, w: int, cfg: PreprocessCfg) -> tuple[int, int]:
    """Output (H, W) of the resize step, exactly as open_clip/torchvision compute it."""
    th, tw = cfg.size
    if cfg.resize_mode == "squash":
        return th, tw
    if cfg.resize_mode == "shortest" and th == tw:
        # torchvision.transforms.functional._compute_resized_output_size with an int size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = th, int(th * long / short)
        return (new_long, new_short) if w <= h else (new_short, new_long)
    # open_clip ResizeKeepRatio: longest=1 for "longest", 0 for non-square "shortest"
    longest = 1.0 if cfg.resize_mode == "longest" else 0.0
    rh, rw = h / th, w / tw
    ratio = max(rh, rw) * longest + min(rh, rw) * (1.0 - longest)
    return round(h / ratio), round(w / ratio)


class ClipPreprocessor:
    """Callable: list of (H, W, 3) uint8 RGB arrays or tensors → (N, 3, H, W) float32 on ``device``."""

    def __init__(self, cfg: PreprocessCfg, device: str = "cpu") -> None:
        import torch

        self.cfg = cfg
        self.device = torch.device(device)
        self._mean = torch.tensor(cfg.mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(cfg.std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1) * 255.0

    def __call__(self, images: Sequence[Any]) -> Any:
        import torch

        if not images:
            th, tw = self.cfg.size
            return torch.empty((0, 3, th, tw), dtype=torch.float32, device=self.device)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            shape = tuple(im.shape)
            if len(shape) != 3 or shape[2] != 3:
                raise EngineError(
                    f"clip preprocess: image {i} has shape {shape}; expected (H, W, 3) RGB uint8",
                    engine="clip",
                )
            groups.setdefault(shape, []).append(i)
        th, tw = self.cfg.size
        out = torch.empty((len(images), 3, th, tw), dtype=torch.float32, device=self.device)
        for (h, w, _), idx in groups.items():
            batch = self._stack([images[i] for i in idx])
            out[torch.as_tensor(idx, device=self.device)] = self._group(batch, h, w)
        return out

    def _stack(self, items: list[Any]) -> Any:
        import torch

        if isinstance(items[0], np.ndarray):
            arr = np.stack(items)  # copies (frames are read-only) into one contiguous block
            t = torch.from_numpy(arr)
        else:
            t = torch.stack([torch.as_tensor(x) for x in items])
        return t.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # N, 3, H, W (uint8)

    def _group(self, x: Any, h: int, w: int) -> Any:
        import torch
        import torch.nn.functional as F

        cfg = self.cfg
        rh, rw = resized_size(h, w, cfg)
        if (rh, rw) != (h, w):
            # torch's antialiased uint8 kernel (CPU) mirrors Pillow; elsewhere resize in float and round.
            if x.dtype == torch.uint8 and x.device.type == "cpu":
                x = F.interpolate(
                    x.contiguous(memory_format=torch.channels_last),
                    size=(rh, rw),
                    mode=cfg.interpolation,
                    antialias=True,
                    align_corners=False,
                )
            else:
                x = F.interpolate(x.float(), size=(rh, rw), mode=cfg.interpolation, antialias=True)
                x = x.clamp_(0, 255).round_()
        x = x.float()
        th, tw = cfg.size
        if rh < th or rw < tw:  # CenterCropOrPad ("longest"): pad with fill colour
            pad_t, pad_l = max(0, (th - rh) // 2), max(0, (tw - rw) // 2)
            canvas = torch.full(
                (x.shape[0], 3, max(th, rh), max(tw, rw)), float(cfg.fill_color), device=x.device
            )
            canvas[:, :, pad_t : pad_t + rh, pad_l : pad_l + rw] = x
            x, rh, rw = canvas, canvas.shape[2], canvas.shape[3]
        top, left = round((rh - th) / 2.0), round((rw - tw) / 2.0)
        x = x[:, :, top : top + th, left : left + tw]
        return (x - self._mean) / self._std

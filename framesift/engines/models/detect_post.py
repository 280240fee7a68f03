"""Detector pre/post-processing as tensor operations on the engine's device.

``letterbox`` resizes (keeping aspect) and pads frames into one ``(B, 3, S, S)`` batch, the way
ultralytics' ``LetterBox(auto=False, center=True)`` does; ``decode`` turns raw ``(B, 4 + K, A)``
outputs (xywh + per-class sigmoid scores) into per-image xyxy boxes in frame pixels after
confidence filtering and class-aware NMS (equal to ultralytics' ``non_max_suppression`` +
``scale_boxes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxInfo:
    """How one frame was placed in the square input: scaled by ``(gain_x, gain_y)`` (the rounded
    resized size over the frame size) then offset by ``(left, top)``."""

    orig_hw: tuple[int, int]
    gain_x: float
    gain_y: float
    left: int
    top: int


def letterbox_params(
    h: int, w: int, size: int, stride: int | None = None
) -> tuple[float, tuple[int, int], int, int, int, int]:
    """(gain, (new_w, new_h), top, bottom, left, right) as ultralytics computes them.

    With ``stride`` (ultralytics' ``auto``), padding is only up to the next multiple of ``stride``
    (a ``size`` x ``size`` box shrunk to the smallest rectangle holding the frame).
    """
    r = min(size / h, size / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    pw, ph = size - new_w, size - new_h
    if stride:
        pw, ph = pw % stride, ph % stride
    dw, dh = pw / 2, ph / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return r, (new_w, new_h), top, bottom, left, right


def letterbox(
    images: Sequence[np.ndarray | torch.Tensor],
    size: int,
    device: str | torch.device = "cpu",
    *,
    rect: bool = False,
    stride: int = 32,
) -> tuple[torch.Tensor, list[LetterboxInfo]]:
    """(H, W, 3) uint8 RGB frames → ``(B, 3, size, size)`` float32 in [0, 1] on ``device``.

    With ``rect`` and all frames of one shape, the batch is the smallest ``stride``-multiple
    rectangle instead (ultralytics' ``auto`` letterbox: 768x576 at 640 → 640x480, 25 % less work).
    Frames of the same shape are resized together: with ``cv2.INTER_LINEAR`` on the CPU (exactly
    ultralytics' resize), with bilinear tensor ops on a GPU device (within one grey level).
    """
    groups: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        groups.setdefault((int(img.shape[0]), int(img.shape[1])), []).append(i)
    auto = stride if rect and len(groups) == 1 else None
    oh = ow = size
    if auto:
        h0, w0 = next(iter(groups))
        _, (nw0, nh0), t, b, le, r = letterbox_params(h0, w0, size, auto)
        oh, ow = nh0 + t + b, nw0 + le + r
    out = torch.full((len(images), 3, oh, ow), PAD_VALUE / 255.0, dtype=torch.float32, device=device)
    infos_by_index: dict[int, LetterboxInfo] = {}
    for (h, w), idx in groups.items():
        _, (nw, nh), top, _, left, _ = letterbox_params(h, w, size, auto)
        if torch.device(device).type == "cpu" and all(isinstance(images[i], np.ndarray) for i in idx):
            # CPU: cv2's uint8 resize (what ultralytics uses; ~10x cheaper than float interpolation)
            rs = [np.asarray(images[i]) for i in idx]
            if (nh, nw) != (h, w):
                rs = [cv2.resize(im, (nw, nh), interpolation=cv2.INTER_LINEAR) for im in rs]
            x = torch.from_numpy(np.stack(rs)).permute(0, 3, 1, 2).float()
        else:  # device tensors: the same bilinear as float ops on the device
            batch = torch.stack([as_tensor_image(images[i], device) for i in idx])
            x = batch.permute(0, 3, 1, 2).float()
            if (nh, nw) != (h, w):
                x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
                x = x.round_().clamp_(0, 255)
        out[idx, :, top : top + nh, left : left + nw] = x.div_(255.0)
        for i in idx:
            infos_by_index[i] = LetterboxInfo((h, w), nw / w, nh / h, left, top)
    return out, [infos_by_index[i] for i in range(len(images))]


def as_tensor_image(image: np.ndarray | torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """An ``(H, W, 3)`` uint8 image as a tensor on ``device``: numpy arrays (read-only frames
    included) are wrapped, tensors already on a device are moved there as they are (``np.asarray``
    on a CUDA tensor raises)."""
    if isinstance(image, torch.Tensor):
        return image.to(device)
    arr = np.asarray(image)
    if not arr.flags.writeable:  # frames are read-only; torch wants a writable buffer to wrap
        arr = arr.copy()
    return torch.from_numpy(arr).to(device)


def xywh2xyxy(x: torch.Tensor) -> torch.Tensor:
    xy, wh = x[..., :2], x[..., 2:4] / 2
    return torch.cat((xy - wh, xy + wh), -1)


def scale_boxes(boxes: torch.Tensor, info: LetterboxInfo) -> torch.Tensor:
    """Boxes in letterboxed input pixels → frame pixels, clipped to the frame."""
    b = boxes.clone()
    b[:, [0, 2]] = (b[:, [0, 2]] - info.left) / info.gain_x
    b[:, [1, 3]] = (b[:, [1, 3]] - info.top) / info.gain_y
    h, w = info.orig_hw
    b[:, [0, 2]] = b[:, [0, 2]].clamp(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clamp(0, h)
    return b


def nms(
    raw: torch.Tensor | np.ndarray,
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    max_nms: int = 30000,
    agnostic: bool = False,
) -> list[torch.Tensor]:
    """Raw ``(B, 4 + K, A)`` (xywh, class scores) → per image ``(n, 6)`` [x1, y1, x2, y2, score, class].

    Single label per box (its best class), confidence filter, top ``max_nms`` by score, class-aware
    NMS (boxes of different classes never suppress each other unless ``agnostic``), ``max_det`` kept.
    """
    pred = torch.as_tensor(raw)
    if pred.ndim != 3 or pred.shape[1] < 5:
        raise ValueError(f"raw detector output must be (B, 4 + K, A), got {tuple(pred.shape)}")
    pred = pred.transpose(1, 2)  # (B, A, 4 + K)
    scores, cls = pred[..., 4:].max(-1)
    out: list[torch.Tensor] = []
    for b in range(pred.shape[0]):
        keep = scores[b] > conf
        s, c = scores[b][keep], cls[b][keep]
        boxes = xywh2xyxy(pred[b, keep, :4])
        if s.numel() > max_nms:
            top = s.argsort(descending=True)[:max_nms]
            s, c, boxes = s[top], c[top], boxes[top]
        groups = torch.zeros_like(c) if agnostic else c
        kept = batched_nms(boxes, s, groups, iou)[:max_det]
        out.append(torch.cat((boxes[kept], s[kept, None], c[kept, None].to(boxes.dtype)), 1))
    return out


def decode(
    raw: torch.Tensor | np.ndarray,
    infos: Sequence[LetterboxInfo],
    *,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    agnostic: bool = False,
) -> list[torch.Tensor]:
    """:func:`nms` then boxes back to each frame's pixels."""
    dets = nms(raw, conf=conf, iou=iou, max_det=max_det, agnostic=agnostic)
    for i, (d, info) in enumerate(zip(dets, infos, strict=True)):
        if len(d):
            d[:, :4] = scale_boxes(d[:, :4], info)
        dets[i] = d
    return dets

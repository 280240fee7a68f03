"""oneDNN (mkldnn) fused operators for PyTorch programs that run on the CPU.

A convolution followed by SiLU costs two passes over the activation when run as two ATen ops; in
bf16 the separate SiLU is about a quarter of the convolution's own time. oneDNN applies the
activation as a post-op while the convolution's output is still in registers
(``torch.ops.mkldnn._convolution_pointwise``, the operator PyTorch's own CPU compiler emits). The
op serialises in a ``torch.export`` program, so the fusion is done once at export time; the saved
program needs only a PyTorch build with oneDNN, which every x86-64 and aarch64 wheel has.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def onednn_available() -> bool:
    """True where PyTorch was built with oneDNN and can use it (x86-64 / aarch64 CPU wheels)."""
    return bool(torch.backends.mkldnn.is_available())


class ConvSiLU(nn.Module):
    """``silu(conv(x))`` as one oneDNN convolution with a swish post-op (same weights as ``conv``).

    Results equal the two-op form up to rounding of the intermediate: the activation is applied to
    the accumulator before the output is rounded to the tensor's dtype (closer to fp32 in bf16).
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not isinstance(conv.padding, tuple) or conv.padding_mode != "zeros":
            raise ValueError(
                f"ConvSiLU needs numeric zero padding, got {conv.padding!r} / {conv.padding_mode}"
            )
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride = list(conv.stride)
        self.padding = list(conv.padding)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # scalars [None]: swish takes no parameter (an empty list would not serialise in torch.export)
        op: Any = torch.ops.mkldnn._convolution_pointwise.default
        return op(
            x,
            self.weight,
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            "swish",
            [None],
            "",
        )

"""INT8 on PyTorch's CPU: a transformer's Linear layers quantised dynamically (FBGEMM kernels).

Dynamic quantisation stores each Linear layer's weights in int8 (per output channel) and quantises
the activations per batch at run time, so it needs no calibration statistics; the INT8 parity gate
still runs on held-out frames (:mod:`framesift.engines.quantize`). On CPUs without VNNI this is
the INT8 path that gains on a transformer: FBGEMM's AVX2 int8 GEMM, with activations in 7 bits
(``reduce_range``) so its 16-bit pair sums cannot saturate, against OpenVINO's fully connected
layers that run no faster than fp32 there. ``nn.MultiheadAttention`` keeps its query/key/value
projection in a bare parameter that quantisation skips, so :func:`linear_attention` first rewrites
it as two Linear layers around ``scaled_dot_product_attention`` (fp32 outputs equal within 1e-5).

FBGEMM picks its instructions from the CPU, not from ``ONEDNN_MAX_CPU_ISA`` & co.:
:func:`apply_fbgemm_cap` gives it the same cap (``FBGEMM_ENABLE_INSTRUCTIONS``) before it first runs.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

from framesift.engines.isa import fbgemm_cap

log = logging.getLogger("framesift.engines.torch_int8")

__all__ = ["apply_fbgemm_cap", "dynamic_int8", "linear_attention"]


def apply_fbgemm_cap() -> str | None:
    """Set ``FBGEMM_ENABLE_INSTRUCTIONS`` from the oneDNN/ATen/MKL caps where the user has not set
    it (FBGEMM reads it once, at its first GEMM); the value in force, or None for the CPU's own."""
    want = fbgemm_cap()
    if want and not os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS"):
        os.environ["FBGEMM_ENABLE_INSTRUCTIONS"] = want
        log.info("FBGEMM capped at %s, as the instruction-set caps in the environment say", want)
    return os.environ.get("FBGEMM_ENABLE_INSTRUCTIONS") or None


def _attention_module() -> Any:
    import torch
    import torch.nn.functional as F

    class LinearAttention(torch.nn.Module):
        """Self-attention with ``nn.MultiheadAttention``'s weights and call, its projections as
        ``nn.Linear`` (which dynamic quantisation reaches)."""

        def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
            super().__init__()
            d = mha.embed_dim
            if mha.in_proj_weight is None or mha.in_proj_bias is None or mha.bias_k is not None:
                raise ValueError("only self-attention with one biased in-projection is rewritten")
            self.heads, self.batch_first = mha.num_heads, mha.batch_first
            self.qkv = torch.nn.Linear(d, 3 * d)
            self.out = torch.nn.Linear(d, d)
            with torch.no_grad():
                self.qkv.weight.copy_(mha.in_proj_weight)
                self.qkv.bias.copy_(mha.in_proj_bias)
                self.out.weight.copy_(mha.out_proj.weight)
                self.out.bias.copy_(mha.out_proj.bias)

        def forward(
            self,
            query: torch.Tensor,
            key: torch.Tensor | None = None,
            value: torch.Tensor | None = None,
            need_weights: bool = False,
            attn_mask: torch.Tensor | None = None,
        ) -> tuple[torch.Tensor, None]:
            if (key is not None and key is not query) or (value is not None and value is not query):
                raise ValueError("LinearAttention runs self-attention only (key and value are the query)")
            x = query if self.batch_first else query.transpose(0, 1)
            b, n, d = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
            y = self.out(y.transpose(1, 2).reshape(b, n, d))
            return (y if self.batch_first else y.transpose(0, 1)), None

    return LinearAttention


def linear_attention(module: Any) -> Any:
    """``module`` with every ``nn.MultiheadAttention`` replaced, in place, by the same attention on
    ``nn.Linear`` projections; returns ``module``."""
    import torch

    cls = _attention_module()
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.MultiheadAttention):
            setattr(module, name, cls(child))
        else:
            linear_attention(child)
    return module


def dynamic_int8(module: Any) -> Any:
    """A copy of ``module`` (eval, fp32, CPU) with its Linear layers in INT8: weights per output
    channel, activations quantised per batch at run time."""
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    apply_fbgemm_cap()
    net = linear_attention(copy.deepcopy(module).float().cpu().eval())
    with warnings.catch_warnings():  # torch.ao's "migrate to torchao" notices
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(net, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)

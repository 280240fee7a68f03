"""INT8 on PyTorch's CPU: a transformer's Linear layers quantised dynamically (FBGEMM kernels).

Dynamic quantisation stores each Linear layer's weights in int8 (per output channel) and quantises
the activations per batch at run time, so it needs no calibration statistics; the INT8 parity gate
still runs on held-out frames (:mod:`framesift.engines.quantize`). On CPUs without VNNI this is
the INT8 path that gains on a transformer: FBGEMM's AVX2 int8 GEMM, with activations in 7 bits
(``reduce_range``) so its 16-bit pair sums cannot saturate, against OpenVINO's fully connected
layers that run no faster than fp32 there. ``nn.MultiheadAttention`` keeps its query/key/value
projection in a bare parameter that quantisation skips, so :func:`linear_attention` first rewrites
it as two Linear layers around ``scaled_dot_product_attention`` (fp32 outputs equal within 1e-5);
attention with separate query/key/value weights is left in fp32.

FBGEMM picks its instructions from the CPU, not from ``ONEDNN_MAX_CPU_ISA`` & co.:
:func:`apply_fbgemm_cap` gives it the same cap (``FBGEMM_ENABLE_INSTRUCTIONS``) before it first runs.
"""

from __future__ import annotations

import contextlib
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
        """``nn.MultiheadAttention``'s weights and call, its projections as ``nn.Linear`` (which
        dynamic quantisation reaches). Cross-attention (a key or value that is not the query) runs
        the fused projection on each input and keeps its third: correct, at three times the cost."""

        def __init__(self, mha: torch.nn.MultiheadAttention) -> None:
            super().__init__()
            d = mha.embed_dim
            if mha.in_proj_weight is None or mha.in_proj_bias is None or mha.bias_k is not None:
                raise ValueError("not one biased in-projection")
            self.heads, self.batch_first = mha.num_heads, mha.batch_first
            self.qkv = torch.nn.Linear(d, 3 * d)
            self.out = torch.nn.Linear(d, d)
            with torch.no_grad():
                self.qkv.weight.copy_(mha.in_proj_weight)
                self.qkv.bias.copy_(mha.in_proj_bias)
                self.out.weight.copy_(mha.out_proj.weight)
                self.out.bias.copy_(mha.out_proj.bias)

        def _heads(self, x: torch.Tensor) -> torch.Tensor:
            b, n, d = x.shape
            return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

        def forward(
            self,
            query: torch.Tensor,
            key: torch.Tensor | None = None,
            value: torch.Tensor | None = None,
            key_padding_mask: torch.Tensor | None = None,
            need_weights: bool = False,
            attn_mask: torch.Tensor | None = None,
            average_attn_weights: bool = True,
            is_causal: bool = False,
        ) -> tuple[torch.Tensor, None]:
            key = query if key is None else key
            value = key if value is None else value
            seq = (lambda t: t) if self.batch_first else (lambda t: t.transpose(0, 1))
            x, d = seq(query), query.shape[-1]
            q, k, v = self.qkv(x).split(d, dim=-1)
            if key is not query:
                kv = self.qkv(seq(key))
                k, v = kv[..., d : 2 * d], kv[..., 2 * d :]
            if value is not key:
                v = self.qkv(seq(value))[..., 2 * d :]
            mask = _additive(attn_mask, x.dtype)
            if mask is not None and mask.dim() == 3:  # (batch * heads, L, S)
                mask = mask.reshape(x.shape[0], self.heads, *mask.shape[1:])
            pad = _additive(key_padding_mask, x.dtype)
            if pad is not None:  # (batch, S): True or -inf where a key is padding
                pad = pad[:, None, None, :]
                mask = pad if mask is None else mask + pad
            y = F.scaled_dot_product_attention(
                self._heads(q),
                self._heads(k),
                self._heads(v),
                attn_mask=mask,
                is_causal=is_causal and mask is None,
            )
            y = self.out(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], d))
            return seq(y), None

    def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """``nn.MultiheadAttention``'s masks (bool: True = left out; float: added) as added floats."""
        if mask is None or mask.dtype != torch.bool:
            return mask
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, float("-inf"))

    return LinearAttention


def linear_attention(module: Any) -> Any:
    """``module`` with every ``nn.MultiheadAttention`` replaced, in place, by the same attention on
    ``nn.Linear`` projections; returns ``module``."""
    import torch

    cls = _attention_module()
    for name, child in list(module.named_children()):
        if isinstance(child, torch.nn.MultiheadAttention):
            with contextlib.suppress(ValueError):  # separate q/k/v weights: left as it is (fp32)
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

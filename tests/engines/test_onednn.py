"""oneDNN conv + SiLU post-op equals the two-op form."""

from __future__ import annotations

import pytest
import torch

from framesift.engines.runtimes.onednn import ConvSiLU, onednn_available

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this PyTorch build has no oneDNN")


@pytest.mark.parametrize(
    ("cin", "cout", "k", "stride", "groups", "bias"),
    [(3, 16, 3, 2, 1, True), (16, 16, 3, 1, 16, True), (8, 24, 1, 1, 1, False)],
)
def test_conv_silu_equals_conv_then_silu(
    cin: int, cout: int, k: int, stride: int, groups: int, bias: bool
) -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=bias).eval()
    x = torch.randn(2, cin, 37, 45)
    with torch.no_grad():
        ref = torch.nn.functional.silu(conv(x))
        ours = ConvSiLU(conv)(x)
        cl = ConvSiLU(conv.to(memory_format=torch.channels_last))(
            x.contiguous(memory_format=torch.channels_last)
        )
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cl, ref, atol=1e-5, rtol=1e-5)


def test_conv_silu_refuses_string_padding() -> None:
    with pytest.raises(ValueError, match="numeric zero padding"):
        ConvSiLU(torch.nn.Conv2d(3, 3, 3, padding="same"))

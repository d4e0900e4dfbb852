"""int8 x int8 linear layers with per-token activation scales (``core_model.quant.dynamic_int8``).

Tolerances: against the float layer, the error of rounding both operands to 127 levels (2% relative,
Frobenius); against the float product of the dequantized operands, float rounding only (1e-5).
"""

from __future__ import annotations

import torch
from torch import nn

from core_model.quant.dynamic_int8 import DynamicInt8Linear, int8_matmul, quantize_rows


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _layer(seed: int = 0, bias: bool = True) -> nn.Linear:
    torch.manual_seed(seed)
    layer = nn.Linear(96, 40, bias=bias)
    with torch.no_grad():
        layer.weight.mul_(3.0)
    return layer


def test_quantize_rows_maps_each_rows_largest_magnitude_to_127():
    x = torch.tensor([[0.5, -2.0, 1.0], [0.0, 0.0, 0.0], [3.0, 1.5, -0.75]])
    q, scales = quantize_rows(x)
    assert q.dtype == torch.int8 and q.abs().amax(dim=1).tolist() == [127, 0, 127]
    assert torch.allclose(q.float() * scales[:, None], x, atol=float(scales.max()) / 2)


def test_output_is_close_to_the_float_layer_and_equal_to_the_dequantized_product():
    layer, x = _layer(), torch.randn(2, 7, 96)
    y = DynamicInt8Linear(layer)(x)
    assert y.shape == (2, 7, 40) and y.dtype == torch.float32
    assert _rel(y, layer(x).detach()) < 0.02
    xq, xs = quantize_rows(x.reshape(-1, 96))
    wq, ws = quantize_rows(layer.weight.detach())
    expected = (xq.float() * xs[:, None]) @ (wq.float() * ws[:, None]).T + layer.bias.detach()
    assert _rel(y.reshape(-1, 40), expected) < 1e-5


def test_a_tokens_output_depends_on_nothing_else_in_the_batch():
    layer = DynamicInt8Linear(_layer(1))
    batch = torch.randn(9, 96)
    batch[4] *= 100  # an outlier token: with one shared activation scale it would coarsen every other row
    alone = torch.cat([layer(row[None]) for row in batch])
    assert torch.equal(layer(batch), alone)


def test_the_int8_product_is_exact_on_the_fast_and_the_fallback_path(monkeypatch):
    from core_model.quant import dynamic_int8

    torch.manual_seed(3)
    a = torch.randint(-127, 128, (33, 1536), dtype=torch.int8)  # sums beyond float32's exact integers
    b = torch.randint(-127, 128, (1536, 24), dtype=torch.int8)
    exact = a.to(torch.int64) @ b.to(torch.int64)
    assert torch.equal(int8_matmul(a, b).to(torch.int64), exact)
    monkeypatch.setattr(dynamic_int8, "_INT_MM", [False])  # a PyTorch without the CPU kernel
    assert torch.equal(int8_matmul(a, b).to(torch.int64), exact)

"""``QuantLinear``: a drop-in ``nn.Linear`` whose weight is stored as int8 or int4 and never as float.

It subclasses ``nn.Linear`` so that tooling that looks for linear layers (peft's LoRA ``target_modules``,
module-name policies) keeps working: peft wraps it like any Linear and adds its LoRA branch unmerged,
on top of the quantized product. ``.weight`` exists only as a read-only, dequantized view for such
tooling; the forward pass uses the packed weight directly.
"""

from __future__ import annotations

import torch
from torch import nn

from core_model.errors import DSuiteError
from core_model.quant import kernels

PRECISIONS = ("fp32", "int8", "int4")


class QuantLinear(nn.Linear):
    """A linear layer with an int8 (per output channel) or int4 (grouped) weight.

    Build it with ``QuantLinear.from_linear(linear, "int4", group_size=32)``.
    """

    def __init__(self, in_features: int, out_features: int, bits: int, group_size: int = 0,
                 bias: bool = False) -> None:
        nn.Module.__init__(self)  # not nn.Linear.__init__: there is no float weight to allocate
        if bits not in (4, 8):
            raise DSuiteError(f"QuantLinear bits must be 4 or 8, got {bits}.")
        if bits == 4 and (group_size <= 0 or group_size % 32 or in_features % group_size):
            raise DSuiteError(
                f"int4 group size {group_size} does not fit in_features={in_features}: expected a multiple "
                "of 32 that divides in_features (32, 64 or 128 usually)."
            )
        if in_features % 32:
            raise DSuiteError(f"in_features must be a multiple of 32 to quantize, got {in_features}.")
        self.in_features = in_features
        self.out_features = out_features
        self.bits = bits
        self.group_size = group_size if bits == 4 else 0
        if bits == 4:
            groups = in_features // group_size
            self.register_buffer("packed", torch.zeros(out_features, in_features // 2, dtype=torch.uint8))
            self.register_buffer("scales", torch.zeros(out_features, groups, dtype=torch.float16))
            self.register_buffer("mins", torch.zeros(out_features, groups, dtype=torch.float16))
        else:
            self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
            self.register_buffer("scales", torch.zeros(out_features, dtype=torch.float32))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    @classmethod
    def from_linear(cls, linear: nn.Linear, precision: str, group_size: int = 32) -> QuantLinear:
        """Quantize a float ``nn.Linear`` (its weight is read, not kept).

        Args:
            linear: the layer to quantize.
            precision: ``"int8"`` or ``"int4"``.
            group_size: int4 group size along the input dimension.
        """
        if precision not in ("int8", "int4"):
            raise DSuiteError(f"QuantLinear precision must be 'int8' or 'int4', got {precision!r}.")
        bits = 4 if precision == "int4" else 8
        layer = cls(linear.in_features, linear.out_features, bits, group_size, bias=linear.bias is not None)
        weight = linear.weight.detach()
        if bits == 4:
            layer.packed, layer.scales, layer.mins = kernels.quantize_int4(weight, group_size)
        else:
            layer.qweight, layer.scales = kernels.quantize_int8(weight)
        if linear.bias is not None:
            layer.bias.data.copy_(linear.bias.detach().float())
        return layer

    @property
    def precision(self) -> str:
        return f"int{self.bits}"

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        """The dequantized float32 weight (a fresh tensor: for inspection and tooling, not for speed)."""
        return self.dequantized_weight()

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 (out_features, in_features) weight this layer stands for."""
        if self.bits == 4:
            return kernels.dequantize_int4(self.packed, self.scales, self.mins, self.group_size)
        return kernels.dequantize_int8(self.qweight, self.scales)

    def nbytes(self) -> int:
        """Bytes of the stored weight (packed values, scales, minimums, bias)."""
        return sum(b.numel() * b.element_size() for b in self.buffers()) + (
            self.bias.numel() * 4 if self.bias is not None else 0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (..., in_features)
        dtype = x.dtype
        x = x.float()
        if self.bits == 4:
            y = kernels.int4_matmul(x, self.packed, self.scales, self.mins, self.group_size)
        else:
            y = kernels.int8_matmul(x, self.qweight, self.scales)
        if self.bias is not None:
            y = y + self.bias
        return y.to(dtype)  # (..., out_features)

    def extra_repr(self) -> str:
        group = f", group_size={self.group_size}" if self.bits == 4 else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.precision}{group}"

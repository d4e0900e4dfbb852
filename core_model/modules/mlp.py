"""The SwiGLU feed-forward block: ``down(silu(gate(x)) * up(x))``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLU(nn.Module):
    """A SwiGLU MLP with Llama's module names (``gate_proj``, ``up_proj``, ``down_proj``)."""

    def __init__(self, hidden: int, intermediate: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)  # (I, D)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)  # (I, D)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)  # (D, I)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., D)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

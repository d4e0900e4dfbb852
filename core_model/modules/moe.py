"""DeepSeek-style mixture of experts: shared experts plus fine-grained routed experts with a top-k router.

A SwiGLU MLP is a sum over slices of its intermediate dimension, so a dense MLP splits exactly into
``shared + sum(routed)`` when every routed expert is active; the router is then not computed at all. With
top-k < all, each token uses the shared experts and its k highest-scoring routed experts. Selected experts
are added with weight exactly 1 (a straight-through weight ``p - p.detach() + 1`` that passes the router's
gradient), so top-k drops terms from the exact sum instead of rescaling the kept ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core_model.modules.mlp import SwiGLU


def load_balancing_loss(probs: torch.Tensor, topk_idx: torch.Tensor, n_experts: int, alpha: float = 0.01):
    """DeepSeekMoE's expert-level balance loss ``alpha * sum_i f_i * P_i``.

    Args:
        probs: router probabilities (N, E), softmax over experts.
        topk_idx: selected experts (N, K).
        n_experts: E.
        alpha: loss weight.

    Returns:
        A scalar; ``f_i = E / (K N) * count_i`` (1 for every expert under perfect balance) and ``P_i`` the
        mean probability of expert i, so a balanced router scores ``alpha``.
    """
    n, k = topk_idx.shape
    counts = torch.zeros(n_experts, device=probs.device, dtype=probs.dtype)
    counts.scatter_add_(0, topk_idx.reshape(-1), torch.ones(n * k, device=probs.device, dtype=probs.dtype))
    f = counts * n_experts / (k * n)  # (E,)
    p = probs.mean(0)  # (E,)
    return alpha * (f * p).sum()


class MoE(nn.Module):
    """``shared_experts(x) + sum over selected routed experts``; module names follow DeepSeek-V2 in HF."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        d, m = config.hidden_size, config.moe_intermediate_size
        self.shared_experts = SwiGLU(d, config.n_shared_experts * m) if config.n_shared_experts else None
        self.experts = nn.ModuleList(SwiGLU(d, m) for _ in range(config.n_routed_experts))
        self.gate = nn.Linear(d, config.n_routed_experts, bias=False)  # the router, (E, D)
        self.last_topk: torch.Tensor | None = None  # (N, K) of the last top-k forward, for diagnostics

    def route(self, x: torch.Tensor, k: int):
        """Router probabilities (N, E) and the top-k experts (N, K) with their weights (N, K) for x (N, D)."""
        probs = F.softmax(self.gate(x).float(), dim=-1)  # (N, E)
        top_p, top_i = probs.topk(k, dim=-1)  # (N, K)
        weights = (top_p - top_p.detach() + 1.0).to(x.dtype)  # value 1, gradient of p
        return probs, top_i, weights

    def _mlps(self) -> list[SwiGLU]:
        return ([self.shared_experts] if self.shared_experts is not None else []) + list(self.experts)

    def _fused_weights(self):
        """All experts as one SwiGLU: ``(gate_up (2I, D), down (D, I))``, or None when experts are wrapped.

        Frozen weights (inference, or LoRA training elsewhere) use a cached concatenation, rebuilt when any
        expert weight is replaced or modified in place; trainable expert weights are concatenated per call so
        gradients flow back to each expert.
        """
        mlps = self._mlps()
        linears = [lin for m in mlps for lin in (m.gate_proj, m.up_proj, m.down_proj)]
        if any(type(lin) is not nn.Linear for lin in linears):
            return None  # e.g. peft- or quantization-wrapped experts: run them one by one
        weights = [lin.weight for lin in linears]
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            return self._concat(mlps)
        stamp = tuple((w.data_ptr(), w._version, w.dtype) for w in weights)
        if getattr(self, "_fused_stamp", None) != stamp:
            with torch.no_grad():
                self._fused = self._concat(mlps)
            self._fused_stamp = stamp
        return self._fused

    @staticmethod
    def _concat(mlps: list[SwiGLU]):
        gate_up = torch.cat([m.gate_proj.weight for m in mlps] + [m.up_proj.weight for m in mlps])  # (2I, D)
        down = torch.cat([m.down_proj.weight for m in mlps], dim=1)  # (D, I)
        return gate_up, down

    def _all_experts(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, D)
        fused = self._fused_weights()
        if fused is not None:  # one matmul pair instead of 1 + n_routed small ones: the dense MLP's speed
            gate, up = F.linear(x, fused[0]).chunk(2, dim=-1)  # (N, I) each
            return F.linear(F.silu(gate) * up, fused[1])
        out = self.shared_experts(x) if self.shared_experts is not None else torch.zeros_like(x)
        for expert in self.experts:
            out = out + expert(x)
        return out

    def forward(self, x: torch.Tensor):  # (B, T, D) -> ((B, T, D), aux loss | None)
        shape = x.shape
        flat = x.reshape(-1, shape[-1])  # (N, D)
        if self.config.all_experts_active:
            return self._all_experts(flat).view(shape), None
        k = self.config.active_experts
        probs, top_i, weights = self.route(flat, k)
        self.last_topk = top_i.detach()
        out = self.shared_experts(flat) if self.shared_experts is not None else torch.zeros_like(flat)
        routed = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            rows, slot = (top_i == e).nonzero(as_tuple=True)  # tokens that chose expert e
            if rows.numel():
                routed.index_add_(0, rows, expert(flat[rows]) * weights[rows, slot, None])
        aux = load_balancing_loss(probs, top_i, len(self.experts), self.config.aux_loss_alpha)
        return (out + routed).view(shape), aux

"""Grouped-query attention with the attention modes full, sliding, strided and hybrid.

``hybrid`` runs a local sliding-window branch and a global strided branch over the same keys and fuses
them per head with a learned, input-dependent sigmoid gate ``g = sigmoid(attn_gate(x))``:
``out = g * global + (1 - g) * local``. The converted base opens the gate fully to the global branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core_model.modules.rope import apply_rotary


class Attention(nn.Module):
    """Multi-head attention with ``n_kv`` key/value heads shared by groups of query heads."""

    def __init__(self, config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        d = config.hidden_size
        self.q_proj = nn.Linear(d, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, d, bias=False)
        self.attn_gate = nn.Linear(d, self.n_heads, bias=True)  # hybrid mode: per-head gate logits
        self.config = config

    def _sdpa(self, q, k, v, mask, causal: bool) -> torch.Tensor:
        # q (B, H, T, hd), k/v (B, KV, S, hd), mask (B|1, 1, T, S) bool -> (B, H, T, hd)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, masks: dict, cache=None):
        b, t, _ = x.shape  # (B, T, D)
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)  # (B, KV, T, hd)
        v = self.v_proj(x).view(b, t, self.n_kv, self.head_dim).transpose(1, 2)  # (B, KV, T, hd)
        q, k = apply_rotary(q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, KV, S, hd): sliding layers return only the window
        mode = self.config.attention_mode
        if mode == "hybrid":
            local = self._sdpa(q, k, v, masks["local"], False)
            global_ = self._sdpa(q, k, v, masks["global"], False)
            gate = torch.sigmoid(self.attn_gate(x)).transpose(1, 2).unsqueeze(-1)  # (B, H, T, 1)
            out = gate * global_ + (1 - gate) * local
        else:
            mask = masks["local"] if mode == "sliding" else masks["global"]
            out = self._sdpa(q, k, v, mask, masks["causal"])
        return self.o_proj(out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim))  # (B, T, D)

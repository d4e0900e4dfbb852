"""Rotary position embeddings with context extension: none, linear interpolation, NTK-aware, YaRN."""

from __future__ import annotations

import math

import torch
from torch import nn


def inverse_frequencies(head_dim: int, theta: float, scaling: str, factor: float, trained_context: int):
    """Per-pair inverse frequencies and the attention scale for a rope scaling method.

    Args:
        head_dim: rotary dimension (even).
        theta: rope base.
        scaling: ``none | linear | ntk | yarn``.
        factor: context extension factor (1 = trained context).
        trained_context: the context length the weights were trained on.

    Returns:
        ``(inv_freq (head_dim/2,), attention_scale)``; cos/sin are multiplied by the scale (YaRN only).
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim  # (hd/2,)
    if scaling == "none" or factor == 1.0:
        return 1.0 / (theta**exponents), 1.0
    if scaling == "linear":  # position interpolation: positions / factor
        return 1.0 / (theta**exponents) / factor, 1.0
    if scaling == "ntk":  # NTK-aware: stretch the base so low frequencies interpolate, high ones extrapolate
        base = theta * factor ** (head_dim / (head_dim - 2))
        return 1.0 / (base**exponents), 1.0
    # YaRN (Peng et al. 2023): ramp between interpolation and extrapolation per frequency, plus a temperature.
    beta_fast, beta_slow = 32.0, 1.0

    def correction_dim(rotations: float) -> float:
        return (head_dim * math.log(trained_context / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), head_dim - 1)
    if low == high:
        high += 0.001
    pos_freqs = theta**exponents
    extrapolation, interpolation = 1.0 / pos_freqs, 1.0 / (factor * pos_freqs)
    ramp = ((torch.arange(head_dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1 = extrapolate (high frequency), 0 = interpolate (low frequency)
    inv_freq = interpolation * (1 - keep) + extrapolation * keep
    return inv_freq, 0.1 * math.log(factor) + 1.0


class RotaryEmbedding(nn.Module):
    """Computes ``cos, sin`` (B, T, hd) for position ids, shared by every layer."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        # Not a buffer: computed on first use (from_pretrained builds modules on the meta device and would
        # leave a non-persistent buffer uninitialized).
        self._inv_freq: torch.Tensor | None = None
        self.attention_scale = 1.0

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        """The (hd/2,) inverse frequencies on ``device``."""
        if self._inv_freq is None or self._inv_freq.device != device:
            c = self.config
            with torch.device("cpu"):
                inv, self.attention_scale = inverse_frequencies(
                    c.head_dim, c.rope_theta, c.rope_scaling, float(c.rope_factor), c.max_position_embeddings
                )
            self._inv_freq = inv.to(device)
        return self._inv_freq

    @torch.no_grad()
    def forward(self, position_ids: torch.Tensor, dtype: torch.dtype):  # (B, T) -> 2 x (B, T, hd)
        inv_freq = self.inv_freq(position_ids.device)
        inv = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)  # (B, hd/2, 1)
        freqs = (inv @ position_ids[:, None, :].float()).transpose(1, 2)  # (B, T, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (B, T, hd)
        cos, sin = emb.cos() * self.attention_scale, emb.sin() * self.attention_scale
        return cos.to(dtype), sin.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotate queries (B, H, T, hd) and keys (B, KV, T, hd) by cos/sin (B, T, hd)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)  # (B, 1, T, hd)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin

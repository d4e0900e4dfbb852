"""Attention masks for every attention mode, built once per forward from absolute positions.

``True`` means "may attend". Query ``i`` and key ``j`` are absolute token indices in the sequence:
- full: ``j <= i``;
- sliding: ``i - W < j <= i`` (the window, self included);
- strided: ``j <= i`` and (``(i - j) % k == 0`` or ``j < s``): every k-th token back plus s sink tokens.
The diagonal is always allowed, so no row is empty (left-padded rows stay finite).
"""

from __future__ import annotations

import torch


def pattern(mode: str, q_pos: torch.Tensor, k_pos: torch.Tensor, window: int, stride: int, sinks: int):
    """The (T, S) boolean pattern of ``mode`` (``full``, ``sliding`` or ``strided``) for these positions."""
    diff = q_pos[:, None] - k_pos[None, :]  # (T, S)
    causal = diff >= 0
    if mode == "full":
        return causal
    if mode == "sliding":
        return causal & (diff < window)
    if mode == "strided":
        return causal & ((diff % stride == 0) | (k_pos[None, :] < sinks))
    raise ValueError(f"no mask pattern for attention mode {mode!r}")


def attention_masks(config, past_len: int, q_len: int, k_len: int, attention_mask, device) -> dict:
    """Masks for one forward: ``{"local": (B|1, 1, T, S) bool | None, "global": ... | None}``.

    ``full`` uses only "global" (None when plain causal SDPA suffices), ``sliding`` only "local",
    ``strided`` only "global", ``hybrid`` both. ``attention_mask`` is the (B, past+T) padding mask or None.
    """
    total = past_len + q_len
    q_pos = torch.arange(past_len, total, device=device)  # (T,)
    k_pos = torch.arange(total - k_len, total, device=device)  # (S,)  the cached keys are a suffix
    padded = attention_mask is not None and not bool(attention_mask.all())
    key_ok = None
    if padded:
        key_ok = attention_mask[:, -k_len:].bool()[:, None, None, :]  # (B, 1, 1, S)
    diagonal = (q_pos[:, None] == k_pos[None, :])  # (T, S)

    def build(mode: str):
        allowed = pattern(mode, q_pos, k_pos, config.window, config.stride, config.sink_tokens)[None, None]
        if key_ok is not None:
            allowed = allowed & key_ok
        return allowed | diagonal

    mode = config.attention_mode
    if mode == "full":
        if not padded and (q_len == k_len or q_len == 1):
            return {"local": None, "global": None, "causal": q_len > 1}
        return {"local": None, "global": build("full"), "causal": False}
    if mode == "sliding":
        return {"local": build("sliding"), "global": None, "causal": False}
    if mode == "strided":
        return {"local": None, "global": build("strided"), "causal": False}
    return {"local": build("sliding"), "global": build("strided"), "causal": False}

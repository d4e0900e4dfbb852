"""Building blocks of the base architecture, one file per concept (shapes in comments)."""

from core_model.modules.attention import Attention
from core_model.modules.masks import attention_masks
from core_model.modules.mlp import SwiGLU
from core_model.modules.moe import MoE, load_balancing_loss
from core_model.modules.rmsnorm import RMSNorm
from core_model.modules.rope import RotaryEmbedding, apply_rotary

__all__ = [
    "Attention", "MoE", "RMSNorm", "RotaryEmbedding", "SwiGLU", "apply_rotary", "attention_masks",
    "load_balancing_loss",
]

"""The typed configuration of the DomainSuite base architecture, with named presets.

The stored checkpoint config describes the exact converted model (full attention, every expert active, no
rope scaling). Runtime knobs (attention mode, window, stride, experts per token, rope scaling) are config
overrides at load time (``load_base(base, overrides={...})`` or ``DSuiteConfig.from_pretrained(dir, **kw)``),
so they never change the stored weights or the base fingerprint.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedConfig

from core_model.errors import DSuiteError

MODEL_TYPE = "dsuite"
ATTENTION_MODES = ("full", "sliding", "strided", "hybrid")
ROPE_SCALINGS = ("none", "linear", "ntk", "yarn")


class DSuiteConfig(PreTrainedConfig):
    """Configuration of :class:`core_model.model.DSuiteForCausalLM`.

    Attributes (beyond the usual decoder fields):
        attention_mode: ``full`` (causal), ``sliding`` (window ``window``), ``strided`` (every
            ``stride``-th token back plus ``sink_tokens``), or ``hybrid`` (sliding + strided branches fused
            per head by a learned sigmoid gate).
        moe_layers: per-layer choice, ``True`` for a mixture-of-experts layer, ``False`` for a dense SwiGLU.
            ``None``: every layer from ``first_k_dense`` on is MoE (DeepSeek's ``first_k_dense_replace``).
        n_shared_experts / n_routed_experts / moe_intermediate_size: DeepSeek-style fine-grained experts; the
            shared experts form one SwiGLU of ``n_shared_experts * moe_intermediate_size``.
        experts_per_token: routed experts per token (top-k); ``None`` or ``n_routed_experts`` = all active
            (the router is then not computed at all).
        aux_loss_alpha: weight of the load-balancing loss (added to the LM loss when training with top-k).
        rope_scaling: ``none | linear | ntk | yarn``; ``rope_factor`` is the context extension factor.
    """

    model_type = MODEL_TYPE
    keys_to_ignore_at_inference = ["past_key_values"]

    vocab_size: int = 49152
    hidden_size: int = 576
    intermediate_size: int = 1536
    num_hidden_layers: int = 30
    num_attention_heads: int = 9
    num_key_value_heads: int = 3
    head_dim: int = 64
    hidden_act: str = "silu"
    max_position_embeddings: int = 8192
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-5
    rope_theta: float = 100000.0
    rope_scaling: str = "none"
    rope_factor: float = 1.0
    attention_mode: str = "full"
    window: int = 256
    stride: int = 64
    sink_tokens: int = 4
    hybrid_gate_bias: float = 30.0
    first_k_dense: int = 0
    moe_layers: list | None = None
    n_shared_experts: int = 8
    n_routed_experts: int = 16
    moe_intermediate_size: int = 64
    experts_per_token: int | None = None
    aux_loss_alpha: float = 0.01
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self.validate_settings()

    def validate_settings(self) -> None:
        """Check every knob, raising :class:`DSuiteError` with the bad value and the allowed ones."""
        if self.attention_mode not in ATTENTION_MODES:
            raise DSuiteError(
                f"attention_mode '{self.attention_mode}' is unknown; expected one of {ATTENTION_MODES}."
            )
        if self.rope_scaling not in ROPE_SCALINGS:
            raise DSuiteError(
                f"rope_scaling '{self.rope_scaling}' is unknown; expected one of {ROPE_SCALINGS}."
            )
        if self.rope_factor < 1.0:
            raise DSuiteError(f"rope_factor must be >= 1 (1 = trained context), got {self.rope_factor}.")
        for name in ("window", "stride"):
            if int(getattr(self, name)) < 1:
                raise DSuiteError(f"{name} must be a positive number of tokens, got {getattr(self, name)}.")
        if self.sink_tokens < 0:
            raise DSuiteError(f"sink_tokens must be >= 0, got {self.sink_tokens}.")
        if self.num_attention_heads % self.num_key_value_heads:
            raise DSuiteError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_key_value_heads}) for grouped-query attention."
            )
        if self.moe_layers is not None and len(self.moe_layers) != self.num_hidden_layers:
            raise DSuiteError(
                f"moe_layers has {len(self.moe_layers)} entries; expected one per layer "
                f"({self.num_hidden_layers}), or None to use first_k_dense."
            )
        k = self.experts_per_token
        if k is not None and not 1 <= k <= self.n_routed_experts:
            raise DSuiteError(
                f"experts_per_token must be between 1 and n_routed_experts ({self.n_routed_experts}), "
                f"or None for all; got {k}."
            )

    def is_moe_layer(self, index: int) -> bool:
        """Whether layer ``index`` is a mixture of experts (``False``: a dense SwiGLU MLP)."""
        if self.n_routed_experts == 0:
            return False
        if self.moe_layers is not None:
            return bool(self.moe_layers[index])
        return index >= self.first_k_dense

    @property
    def active_experts(self) -> int:
        """Routed experts used per token (``n_routed_experts`` when all are active)."""
        return self.n_routed_experts if self.experts_per_token is None else int(self.experts_per_token)

    @property
    def all_experts_active(self) -> bool:
        """True when every routed expert is used: the MoE is then exactly the dense MLP it came from."""
        return self.active_experts == self.n_routed_experts

    @property
    def layer_types(self) -> list[str]:
        """Cache layer kinds for transformers' ``DynamicCache``: sliding layers keep only the window."""
        kind = "sliding_attention" if self.attention_mode == "sliding" else "full_attention"
        return [kind] * self.num_hidden_layers

    @property
    def sliding_window(self) -> int | None:
        """The window transformers' cache keeps (only in ``sliding`` mode; other modes need every key)."""
        return int(self.window) if self.attention_mode == "sliding" else None


PRESETS: dict[str, dict[str, Any]] = {
    # A few-hundred-thousand-parameter model for tests: 2 layers (dense then MoE), GQA 4/2.
    "tiny": dict(
        vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rope_theta=10000.0, window=8,
        stride=4, sink_tokens=2, first_k_dense=1, n_shared_experts=2, n_routed_experts=4,
        moe_intermediate_size=16, tie_word_embeddings=True, hybrid_gate_bias=0.0,
    ),
    # The converted SmolLM2-135M-Instruct: Llama shape, dense MLP (1536) split into 8 shared + 16 routed
    # experts of 64 channels each; layer 0 stays dense.
    "smollm2-135m": dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
        rope_theta=100000.0, rms_norm_eps=9.999999747378752e-06, first_k_dense=1, n_shared_experts=8,
        n_routed_experts=16, moe_intermediate_size=64, tie_word_embeddings=True, bos_token_id=1,
        eos_token_id=2, pad_token_id=2,
    ),
}


def config_from_preset(name: str, **overrides: Any) -> DSuiteConfig:
    """A config from a named preset (``tiny``, ``smollm2-135m``) with keyword overrides.

    Raises:
        DSuiteError: the preset name is unknown.
    """
    if name not in PRESETS:
        raise DSuiteError(f"Unknown config preset '{name}'; expected one of {sorted(PRESETS)}.")
    return DSuiteConfig(**{**PRESETS[name], **overrides})

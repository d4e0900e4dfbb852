"""The DomainSuite base model as a Hugging Face ``PreTrainedModel`` (registered with the Auto classes).

``DSuiteForCausalLM.forward(input_ids, attention_mask, position_ids, cache | past_key_values, use_cache,
labels)`` follows transformers' causal-LM semantics, so ``generate``, ``save_pretrained``/``from_pretrained``
and peft work. Module names match Llama/DeepSeek-V2 (``model.layers.N.self_attn.q_proj``,
``model.layers.N.mlp.experts.E.gate_proj``, ``model.layers.N.mlp.shared_experts.up_proj``, ``lm_head``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast

from core_model.config import MODEL_TYPE, DSuiteConfig
from core_model.errors import DSuiteError
from core_model.modules import Attention, MoE, RMSNorm, RotaryEmbedding, SwiGLU, attention_masks


@dataclass
class DSuiteCausalLMOutput(CausalLMOutputWithPast):
    """Causal-LM output plus the summed load-balancing loss of the MoE layers (None with all experts)."""

    aux_loss: torch.Tensor | None = None


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))`` with a dense or MoE MLP."""

    def __init__(self, config: DSuiteConfig, layer_idx: int) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = Attention(config, layer_idx)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        moe = config.is_moe_layer(layer_idx)
        self.mlp = MoE(config) if moe else SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(self, x, cos, sin, masks, cache=None):  # (B, T, D) -> ((B, T, D), aux | None)
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, masks, cache)
        out = self.mlp(self.post_attention_layernorm(x))
        aux = None
        if isinstance(out, tuple):
            out, aux = out
        return x + out, aux


class DSuitePreTrainedModel(PreTrainedModel):
    """Shared settings of the DomainSuite model classes."""

    config_class = DSuiteConfig
    config: DSuiteConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = False
    _no_split_modules = ["DecoderLayer"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, RMSNorm):
            nn.init.ones_(module.weight)
        if isinstance(module, Attention):  # the hybrid gate starts at its configured opening
            nn.init.zeros_(module.attn_gate.weight)
            nn.init.constant_(module.attn_gate.bias, self.config.hybrid_gate_bias)


class DSuiteModel(DSuitePreTrainedModel):
    """The decoder stack without the language-model head."""

    def __init__(self, config: DSuiteConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = RotaryEmbedding(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, inputs_embeds=None,
                use_cache=None):
        """Hidden states (B, T, D), the cache and the summed aux loss."""
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, D)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        past = cache.get_seq_length() if cache is not None else 0
        t = x.shape[1]
        if position_ids is None:
            position_ids = torch.arange(past, past + t, device=x.device)[None].expand(x.shape[0], -1)
        k_len = t + (min(past, self.config.window - 1) if self.config.attention_mode == "sliding" else past)
        if cache is None:
            k_len = t
        masks = attention_masks(self.config, past, t, k_len, attention_mask, x.device)
        cos, sin = self.rotary_emb(position_ids, x.dtype)  # (B, T, hd)
        aux_total = None
        for layer in self.layers:
            x, aux = layer(x, cos, sin, masks, cache)
            if aux is not None:
                aux_total = aux if aux_total is None else aux_total + aux
        return self.norm(x), cache, aux_total


class DSuiteForCausalLM(DSuitePreTrainedModel, GenerationMixin):
    """The base language model: decoder stack plus the (tied) vocabulary head."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DSuiteConfig) -> None:
        super().__init__(config)
        self.model = DSuiteModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def configure(self, **knobs) -> DSuiteForCausalLM:
        """Change runtime knobs in place (``attention_mode``, ``window``, ``stride``, ``sink_tokens``,
        ``experts_per_token``, ``rope_scaling``, ``rope_factor``); the weights are untouched.

        Raises:
            DSuiteError: an unknown knob or a bad value (the previous settings are kept).
        """
        allowed = {"attention_mode", "window", "stride", "sink_tokens", "experts_per_token", "rope_scaling",
                   "rope_factor", "aux_loss_alpha"}
        unknown = set(knobs) - allowed
        if unknown:
            raise DSuiteError(f"Unknown runtime knobs {sorted(unknown)}; expected some of {sorted(allowed)}.")
        old = {k: getattr(self.config, k) for k in knobs}
        for key, value in knobs.items():
            setattr(self.config, key, value)
        try:
            self.config.validate_settings()
        except DSuiteError:
            for key, value in old.items():
                setattr(self.config, key, value)
            raise
        self.model.rotary_emb._inv_freq = None  # recomputed for the new rope scaling
        return self

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> DSuiteCausalLMOutput:
        """Logits (B, T, V); with ``labels`` (B, T, -100 = ignored) the shifted cross-entropy loss, plus the
        load-balancing loss when the MoE routes top-k and the model is training."""
        if cache is None:
            cache = past_key_values
        hidden, cache, aux = self.model(
            input_ids, attention_mask, position_ids, cache, inputs_embeds, use_cache
        )
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden = hidden[:, logits_to_keep]
        logits = self.lm_head(hidden)  # (B, T, V)
        loss = None
        if labels is not None:
            shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
            shift_labels = labels[:, 1:].reshape(-1).to(logits.device)
            loss = F.cross_entropy(shift_logits, shift_labels, ignore_index=-100)
            if aux is not None and self.training:
                loss = loss + aux
        return DSuiteCausalLMOutput(loss=loss, logits=logits, cache=cache, aux_loss=aux)


AutoConfig.register(MODEL_TYPE, DSuiteConfig, exist_ok=True)
AutoModelForCausalLM.register(DSuiteConfig, DSuiteForCausalLM, exist_ok=True)

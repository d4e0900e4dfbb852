"""The converted embedded base: exact MoE split on a tiny Llama, and logit/greedy parity on the real base."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from core_model.check import LOGIT_TOLERANCE, check_prompts, parity
from core_model.config import config_from_preset
from core_model.convert import balanced_kmeans, convert_llama, expert_partition
from core_model.model import DSuiteForCausalLM


def tiny_llama() -> LlamaForCausalLM:
    t = config_from_preset("tiny")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=t.vocab_size, hidden_size=t.hidden_size, intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers, num_attention_heads=t.num_attention_heads,
        num_key_value_heads=t.num_key_value_heads, head_dim=t.head_dim,
        max_position_embeddings=t.max_position_embeddings, rope_theta=t.rope_theta, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg).eval()


def test_balanced_kmeans_gives_equal_clusters():
    x = torch.randn(96, 8)
    assign = balanced_kmeans(x, 6)
    assert torch.bincount(assign, minlength=6).tolist() == [16] * 6


def test_expert_partition_covers_every_channel_once():
    cfg = config_from_preset("tiny")
    inter, hidden = cfg.intermediate_size, cfg.hidden_size  # 96 = (2 shared + 4 routed) x 16 channels
    gate, up, down = torch.randn(inter, hidden), torch.randn(inter, hidden), torch.randn(hidden, inter)
    shared, routed, router = expert_partition(gate, up, down, cfg)
    every = torch.cat([shared, *routed]).sort().values
    assert torch.equal(every, torch.arange(inter))
    assert len(shared) == 32 and all(len(r) == 16 for r in routed) and router.shape == (4, 64)


def test_tiny_llama_converts_exactly():
    llama = tiny_llama()
    ours = convert_llama(llama, preset="tiny", progress=False)
    ids = torch.randint(0, 256, (2, 24))
    with torch.no_grad():
        diff = (ours(ids).logits - llama(ids).logits).abs().max().item()
    assert diff < 1e-5
    assert isinstance(ours, DSuiteForCausalLM) and ours.config.is_moe_layer(1)


@pytest.mark.slow
def test_converted_embedded_base_matches_llama(embedded_base):
    from transformers import AutoModelForCausalLM

    from core_model.base import embedded_hf_dir

    reference = AutoModelForCausalLM.from_pretrained(embedded_hf_dir(), dtype=torch.float32).eval()
    assert isinstance(embedded_base.model, DSuiteForCausalLM)
    result = parity(embedded_base.model, reference, embedded_base.tokenizer, check_prompts()[:8], 64, False)
    assert result["prompts"] == 8 and result["greedy_tokens"] == 64
    assert result["max_abs_logit_diff"] < LOGIT_TOLERANCE
    assert result["greedy_identical"], result

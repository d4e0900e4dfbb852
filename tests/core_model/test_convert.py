"""The converted embedded base: exact MoE split on a tiny Llama, and logit/greedy parity on the real base."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from core_model.check import LOGIT_TOLERANCE, check_prompts, parity
from core_model.config import config_from_preset
from core_model.convert import (
    balanced_kmeans,
    convert_llama,
    expert_partition,
    fused_channel_order,
    load_channel_order,
    save_channel_order,
)
from core_model.model import DSuiteForCausalLM


def tiny_llama() -> LlamaForCausalLM:
    t = config_from_preset("tiny")
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=t.vocab_size,
        hidden_size=t.hidden_size,
        intermediate_size=t.intermediate_size,
        num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads,
        num_key_value_heads=t.num_key_value_heads,
        head_dim=t.head_dim,
        max_position_embeddings=t.max_position_embeddings,
        rope_theta=t.rope_theta,
        tie_word_embeddings=True,
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


def test_channel_order_puts_the_engine_mlp_back_in_source_order(tmp_path):
    """The saved permutation lets the engine fuse the experts into the source MLP, column for column."""
    from core_model.engine import Engine

    llama = tiny_llama()
    ours = convert_llama(llama, preset="tiny", progress=False)
    save_channel_order(fused_channel_order(llama, ours), tmp_path)
    assert not load_channel_order(ours, tmp_path / "missing")
    shuffled = Engine(ours, policy="fp32", max_batch=1, max_len=32)
    assert load_channel_order(ours, tmp_path)
    restored = Engine(ours, policy="fp32", max_batch=1, max_len=32)
    for i, block in enumerate(restored.blocks):
        p = f"model.layers.{i}.mlp."
        down = llama.state_dict()[p + "down_proj.weight"]
        assert torch.equal(block.down.tensors[0], down), i
        sd = llama.state_dict()
        gate_up = torch.cat([sd[p + "gate_proj.weight"], sd[p + "up_proj.weight"]])
        assert torch.equal(block.gate_up.tensors[0], gate_up), i
    assert not torch.equal(shuffled.blocks[1].down.tensors[0], restored.blocks[1].down.tensors[0])
    ids = [1, 9, 8, 7, 30, 31, 32, 60]
    a, b = shuffled.prefill(0, ids, all_logits=True), restored.prefill(0, ids, all_logits=True)
    assert torch.allclose(a, b, atol=1e-4)  # a permutation of channels: the same function


def test_engine_refuses_a_channel_order_of_another_conversion(tmp_path):
    """A saved order whose length does not fit the layer is an error that says how to rewrite it."""
    from core_model.engine import Engine
    from core_model.errors import DSuiteError

    llama = tiny_llama()
    ours = convert_llama(llama, preset="tiny", progress=False)
    save_channel_order(fused_channel_order(llama, ours), tmp_path)
    assert load_channel_order(ours, tmp_path)
    ours.mlp_channel_order = {i: order[:-1] for i, order in ours.mlp_channel_order.items()}
    with pytest.raises(DSuiteError, match="dsuite base prepare"):
        Engine(ours, policy="fp32", max_batch=1, max_len=32)


def test_channel_order_refuses_a_model_that_is_not_the_conversion():
    from core_model.errors import DSuiteError

    ours = convert_llama(tiny_llama(), preset="tiny", progress=False)
    other = tiny_llama()
    with torch.no_grad():
        other.model.layers[1].mlp.down_proj.weight.mul_(2)
    with pytest.raises(DSuiteError, match="matches no source column"):
        fused_channel_order(other, ours)


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


def test_conversion_does_not_depend_on_the_random_state():
    """Every converted weight comes from the source or is set by the conversion (the hybrid gates open
    fully to the global branch): two conversions under different seeds are identical, so the base's
    fingerprint does not change with the library's weight initialisation."""
    llama = tiny_llama()
    torch.manual_seed(1)
    first = convert_llama(llama, preset="tiny", progress=False).state_dict()
    torch.manual_seed(2)
    second = convert_llama(llama, preset="tiny", progress=False).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    gates = [k for k in first if "attn_gate" in k]
    bias = config_from_preset("tiny").hybrid_gate_bias
    assert gates and all(torch.all(first[k] == (bias if k.endswith("bias") else 0.0)) for k in gates)

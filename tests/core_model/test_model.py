"""The architecture on the `tiny` preset: shapes, masks, routing, losses, cache, save/load, peft."""

from __future__ import annotations

import pytest
import torch

from core_model.config import config_from_preset
from core_model.errors import DSuiteError
from core_model.model import DSuiteForCausalLM
from core_model.modules.masks import pattern
from core_model.modules.moe import load_balancing_loss


def tiny(seed: int = 0, **overrides) -> DSuiteForCausalLM:
    torch.manual_seed(seed)
    return DSuiteForCausalLM(config_from_preset("tiny", **overrides)).eval()


def ids(t: int = 24, b: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["full", "sliding", "strided", "hybrid"])
def test_output_shapes_and_causality(mode):
    model = tiny(attention_mode=mode)
    x = ids()
    with torch.no_grad():
        out = model(x).logits
        assert out.shape == (2, 24, 256)
        y = x.clone()
        y[:, 13:] = (y[:, 13:] + 7) % 256  # perturb every token after t = 12
        changed = model(y).logits
    assert torch.allclose(out[:, :13], changed[:, :13], atol=1e-6)
    assert not torch.allclose(out[:, 13:], changed[:, 13:])


def test_sliding_window_ignores_tokens_before_the_window():
    model = tiny(attention_mode="sliding", num_hidden_layers=1, first_k_dense=1)  # one layer: exact window W
    w, t = model.config.window, 20
    x = ids(t=t + 1)
    y = x.clone()
    y[:, : t - w + 1] = (y[:, : t - w + 1] + 3) % 256  # every token at or before t - W
    with torch.no_grad():
        a, b = model(x).logits[:, t], model(y).logits[:, t]
        c = model(x[:, :-1]).logits[:, t - 1]
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(c, model(y[:, :-1]).logits[:, t - 1]) or w > t  # inside the window it matters


def test_strided_mask_attends_exactly_every_kth_token_and_the_sinks():
    q, k = torch.arange(10, 12), torch.arange(12)
    mask = pattern("strided", q, k, window=8, stride=4, sinks=2)
    allowed = [set(torch.nonzero(row).flatten().tolist()) for row in mask]
    assert allowed[0] == {0, 1, 2, 6, 10}  # query 10: sinks 0-1, then 10, 6, 2
    assert allowed[1] == {0, 1, 3, 7, 11}  # query 11: sinks 0-1, then 11, 7, 3
    window = pattern("sliding", q, k, window=3, stride=4, sinks=2)
    assert set(torch.nonzero(window[0]).flatten().tolist()) == {8, 9, 10}


def test_top_k_routing_uses_k_experts_per_token():
    model = tiny(experts_per_token=2)
    with torch.no_grad():
        out = model(ids())
    moe = model.model.layers[1].mlp
    assert moe.last_topk.shape == (48, 2)
    assert all(len(set(row)) == 2 for row in moe.last_topk.tolist())
    assert out.aux_loss is not None and out.aux_loss.item() > 0


def test_all_experts_equal_the_dense_sum_without_router():
    model = tiny()
    moe = model.model.layers[1].mlp
    x = torch.randn(5, 64)
    expected = moe.shared_experts(x) + sum(e(x) for e in moe.experts)
    with torch.no_grad():
        got, aux = moe(x[None])
    assert aux is None and torch.allclose(got[0], expected, atol=1e-5)


def test_load_balancing_loss_matches_a_hand_computed_value():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]])
    top = torch.tensor([[0], [1], [0], [2]])  # counts 2, 1, 1 of N*K = 4
    # f = E/(K N) * count = 3/4 * [2, 1, 1]; P = mean probs = [0.375, 0.3, 0.325]
    expected = 0.01 * (1.5 * 0.375 + 0.75 * 0.3 + 0.75 * 0.325)
    assert load_balancing_loss(probs, top, 3, alpha=0.01).item() == pytest.approx(expected, rel=1e-6)


def test_gradients_reach_gates_and_routers():
    model = tiny(attention_mode="hybrid", experts_per_token=2).train()
    x = ids()
    out = model(x, labels=x)
    out.loss.backward()
    layer = model.model.layers[1]
    assert layer.mlp.gate.weight.grad is not None and layer.mlp.gate.weight.grad.abs().sum() > 0
    assert layer.self_attn.attn_gate.weight.grad.abs().sum() > 0
    assert out.aux_loss is not None  # added to the loss in training


@pytest.mark.parametrize("mode", ["full", "sliding", "hybrid", "strided"])
def test_cached_generation_equals_uncached_forward(mode):
    model = tiny(attention_mode=mode)
    prompt = ids(t=6, b=1)
    gen = model.generate(prompt, max_new_tokens=20, do_sample=False, min_new_tokens=20, pad_token_id=0)
    with torch.no_grad():
        logits = model(gen, use_cache=False).logits
    assert gen.shape[1] == 26
    assert torch.equal(gen[0, 6:], logits[0, 5:-1].argmax(-1))


def test_sliding_cache_keeps_only_the_window():
    model = tiny(attention_mode="sliding")
    with torch.no_grad():
        out = model(ids(t=30, b=1), use_cache=True)
    keys = out.cache.layers[0].keys
    assert keys.shape[2] == model.config.window - 1  # the next query plus W - 1 cached keys = the window


def test_save_load_round_trip(tmp_path):
    model = tiny(experts_per_token=2)
    model.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = ids()
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert loaded.config.experts_per_token == 2
    override = AutoModelForCausalLM.from_pretrained(tmp_path, attention_mode="sliding", window=4)
    assert override.config.attention_mode == "sliding" and override.config.window == 4


def test_peft_lora_on_q_v_attaches_and_trains():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny().train(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert sum("q_proj" in n for n in trainable) == 4  # A and B in 2 layers
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x = ids(t=16, b=4)
    losses = []
    for _ in range(15):
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1


@pytest.mark.parametrize("scaling", ["none", "linear", "ntk", "yarn"])
def test_rope_scaling_methods(scaling):
    from core_model.modules.rope import inverse_frequencies

    base, _ = inverse_frequencies(16, 10000.0, "none", 1.0, 128)
    inv, scale = inverse_frequencies(16, 10000.0, scaling, 4.0, 128)
    if scaling == "none":
        assert torch.equal(inv, base) and scale == 1.0
    elif scaling == "linear":
        assert torch.allclose(inv, base / 4)
    else:  # the highest frequency is (nearly) kept, the lowest is interpolated
        assert inv[0] == pytest.approx(base[0].item(), rel=1e-6)
        assert inv[-1] < base[-1] * 0.5
    if scaling == "yarn":
        assert scale == pytest.approx(0.1 * torch.log(torch.tensor(4.0)).item() + 1)
    model = tiny(rope_scaling=scaling, rope_factor=4.0)
    with torch.no_grad():
        assert torch.isfinite(model(ids(t=40)).logits).all()


def test_bad_settings_raise_clear_errors():
    with pytest.raises(DSuiteError, match="attention_mode 'window'"):
        config_from_preset("tiny", attention_mode="window")
    with pytest.raises(DSuiteError, match="experts_per_token"):
        config_from_preset("tiny", experts_per_token=9)
    with pytest.raises(DSuiteError, match="Unknown config preset"):
        config_from_preset("huge")


def test_fused_all_expert_path_follows_weight_changes():
    model = tiny()
    moe = model.model.layers[1].mlp
    x = torch.randn(1, 3, 64)
    with torch.no_grad():
        before, _ = moe(x)
        moe.experts[2].down_proj.weight.mul_(2.0)  # in-place change: the cached fusion must notice
        after, _ = moe(x)
        expected = moe.shared_experts(x) + sum(e(x) for e in moe.experts)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, expected, atol=1e-5)


def test_experts_train_through_the_fused_path():
    model = tiny().train()
    x = ids(t=8)
    model(x, labels=x).loss.backward()
    grads = [e.gate_proj.weight.grad for e in model.model.layers[1].mlp.experts]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)

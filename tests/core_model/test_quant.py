"""Quantized linear layers, kernels and precision policies.

Tolerances: the int4/int8 kernels quantize activations to int8 in blocks of 32 (as llama.cpp does), so
they match the float product with the *dequantized* weight to within 2% relative (Frobenius) error; the
reference path (plain PyTorch) matches it to 1e-5.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from core_model.errors import DSuiteError
from core_model.quant import QuantLinear, kernels, parse_policy, quantize_model

KERNEL_REL_TOL = 0.02


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def weight() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(96, 256, generator=g) * 0.05 + 0.01


def test_native_kernels_are_built():
    assert kernels.native() is not None, "the AVX2 kernels should build on this CPU (g++ and AVX2 present)"


def test_kernel_build_folder_follows_the_sources_and_a_killed_builds_lock_is_cleared(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    folder = kernels.build_directory()
    assert folder.parent == tmp_path and folder.name.startswith("dsuite_qgemm-")
    assert kernels.build_directory() == folder  # same sources, same folder
    lock = folder / "lock"  # torch's lock file, as a killed build leaves it (torch would wait on it forever)
    # a live builder: another process holds the guard, so its lock file is left alone
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(folder / kernels.GUARD_FILE)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        lock.write_text("")
        with kernels.build_guard(folder, wait=False) as held:
            assert held is False and lock.exists()
    finally:
        holder.kill()
        holder.wait()
    # the builder was killed: the OS freed its guard, so the next build clears the lock at once
    with kernels.build_guard(folder, wait=False) as held:
        assert held is True and not lock.exists()


@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_round_trip_is_within_half_a_step(weight, group):
    packed, scales, mins = kernels.quantize_int4(weight, group)
    assert packed.shape == (96, 128) and scales.shape == (96, 256 // group)
    assert torch.equal(kernels.pack_int4(kernels.unpack_int4(packed)), packed)
    deq = kernels.dequantize_int4(packed, scales, mins, group)
    step = scales.float().repeat_interleave(group, dim=1)
    assert bool(((deq - weight).abs() <= step / 2 + 1e-3 * step + 1e-6).all())


def test_int8_round_trip_is_within_half_a_step(weight):
    q, s = kernels.quantize_int8(weight)
    deq = kernels.dequantize_int8(q, s)
    assert bool(((deq - weight).abs() <= s[:, None] / 2 + 1e-7).all())


@pytest.mark.parametrize("rows", [1, 3, 8, 13])
@pytest.mark.parametrize("group", [32, 64, 128])
def test_int4_kernel_matches_dequantized_reference(weight, rows, group):
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(rows))
    packed, scales, mins = kernels.quantize_int4(weight, group)
    ref = x @ kernels.dequantize_int4(packed, scales, mins, group).T
    got = kernels.int4_matmul(x, packed, scales, mins, group)
    assert got.shape == (rows, 96)
    assert _rel(got, ref) < KERNEL_REL_TOL


@pytest.mark.parametrize("in_features", [32, 288, 576, 1536])
@pytest.mark.parametrize("rows", [1, 2, 5])
def test_int4_kernel_handles_block_counts_that_are_odd_or_not_a_multiple_of_8(in_features, rows):
    """The kernel reads two 32-value blocks per step and pads its scale arrays to 8 blocks: 1, 9, 18 and
    48 blocks (the base's 576 and 1536 inputs among them) must all give the reference product."""
    g = torch.Generator().manual_seed(in_features)
    weight = torch.randn(40, in_features, generator=g) * 0.05 + 0.01
    x = torch.randn(rows, in_features, generator=g)
    packed, scales, mins = kernels.quantize_int4(weight, 32)
    ref = x @ kernels.dequantize_int4(packed, scales, mins, 32).T
    assert _rel(kernels.int4_matmul(x, packed, scales, mins, 32), ref) < KERNEL_REL_TOL


@pytest.mark.parametrize("rows", [1, 5, 32])
def test_int8_kernel_matches_dequantized_reference(weight, rows):
    x = torch.randn(rows, 256, generator=torch.Generator().manual_seed(rows))
    q, s = kernels.quantize_int8(weight)
    ref = x @ kernels.dequantize_int8(q, s).T
    assert _rel(kernels.int8_matmul(x, q, s), ref) < KERNEL_REL_TOL


def test_quant_linear_matches_float_linear_and_keeps_shapes(weight):
    linear = nn.Linear(256, 96, bias=True)
    with torch.no_grad():
        linear.weight.copy_(weight)
    x = torch.randn(2, 5, 256)
    ref = linear(x)
    for precision, tol in (("int8", 0.02), ("int4", 0.1)):
        layer = QuantLinear.from_linear(linear, precision, group_size=32)
        assert isinstance(layer, nn.Linear) and layer.weight.shape == (96, 256)
        out = layer(x)
        assert out.shape == (2, 5, 96)
        assert _rel(out, ref) < tol, precision
        assert layer.nbytes() < weight.numel() * 4 / (3 if precision == "int8" else 5)


def test_reference_path_matches_kernel(weight, monkeypatch):
    x = torch.randn(4, 256)
    packed, scales, mins = kernels.quantize_int4(weight, 64)
    fast = kernels.int4_matmul(x, packed, scales, mins, 64)
    monkeypatch.setitem(kernels._STATE, "module", None)
    slow = kernels.int4_matmul(x, packed, scales, mins, 64)
    assert _rel(slow, x @ kernels.dequantize_int4(packed, scales, mins, 64).T) < 1e-5
    assert _rel(fast, slow) < KERNEL_REL_TOL


def test_policy_grammar_and_presets():
    policy = parse_policy("int4-g64@0-19,int8@20-29,fp32@lm_head")
    assert policy.precision_for("model.layers.3.self_attn.q_proj") == ("int4", 64)
    assert policy.precision_for("model.layers.25.mlp.experts.3.down_proj") == ("int8", 0)
    assert policy.precision_for("lm_head") == ("fp32", 0)
    mixed = parse_policy("mixed")
    assert mixed.precision_for("model.layers.0.mlp.gate_proj") == ("int4", 32)
    assert mixed.precision_for("model.layers.29.mlp.gate_proj") == ("int8", 0)
    assert parse_policy("int4").precision_for("lm_head") == ("int8", 0)
    suffix = parse_policy("int4,int8@*.down_proj")
    assert suffix.precision_for("model.layers.1.mlp.shared_experts.down_proj") == ("int8", 0)
    assert suffix.precision_for("model.layers.1.mlp.shared_experts.up_proj") == ("int4", 32)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("int3", "Unknown precision 'int3'"),
        ("int4-g48", "multiple of 32"),
        ("int8-g32", "Only int4 takes a group size"),
        ("int4@19-0", "runs backwards"),
        ("int4@attention", "Unknown selector '@attention'"),
        ("int4,,int8", "Empty rule"),
        ("", "non-empty"),
    ],
)
def test_bad_policy_says_what_was_expected(bad, fragment):
    with pytest.raises(DSuiteError) as err:
        parse_policy(bad)
    message = str(err.value)
    assert fragment in message
    assert "Expected comma-separated rules PRECISION[@SELECTOR]" in message
    assert "mixed" in message  # the presets are listed


def test_policy_naming_missing_blocks_is_refused(tiny_llama):
    with pytest.raises(DSuiteError, match="names block 9, but the model has 2 decoder blocks"):
        quantize_model(tiny_llama, "int4@0-9")


def make_tiny_llama(seed: int = 0):
    """A 2-block Llama with random weights (every projection quantizable: widths multiples of 64)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, max_position_embeddings=256, tie_word_embeddings=True,
        initializer_range=0.1, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture
def tiny_llama():
    return make_tiny_llama()


def test_quantize_model_follows_the_policy(tiny_llama):
    report = quantize_model(tiny_llama, "int4-g64@0,int8@1,int8@lm_head")
    layers = tiny_llama.model.layers
    assert layers[0].self_attn.q_proj.precision == "int4" and layers[0].self_attn.q_proj.group_size == 64
    assert layers[1].mlp.down_proj.precision == "int8"
    assert isinstance(tiny_llama.lm_head, QuantLinear)
    assert report.layers == {"int4": 7, "int8": 8}
    with torch.inference_mode():
        logits = tiny_llama(torch.tensor([[1, 5, 9, 12]])).logits
    assert logits.shape == (1, 4, 256) and bool(torch.isfinite(logits).all())


def test_lora_adapter_runs_unmerged_over_quantized_base(tiny_llama):
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import Linear as LoraLinear

    reference = make_tiny_llama()
    ids = torch.tensor([[1, 17, 33, 60, 4]])
    quantize_model(tiny_llama, "int4")
    with torch.inference_mode():
        base_logits = tiny_llama(ids).logits
    model = get_peft_model(tiny_llama, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    q_proj = model.base_model.model.model.layers[0].self_attn.q_proj
    assert isinstance(q_proj, LoraLinear) and isinstance(q_proj.base_layer, QuantLinear)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)  # a non-zero adapter, so its effect is visible
    x = torch.randn(3, 128)
    with torch.inference_mode():
        expected = q_proj.base_layer(x) + q_proj.lora_B["default"](q_proj.lora_A["default"](x)) * 2.0
        assert torch.allclose(q_proj(x), expected, atol=1e-5)  # unmerged: base product + LoRA branch
        adapted = model(input_ids=ids).logits
        assert not torch.allclose(adapted, base_logits, atol=1e-3)
        with model.disable_adapter():
            assert torch.allclose(model(input_ids=ids).logits, base_logits, atol=1e-5)
        out = model.generate(input_ids=ids, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert out.shape == (1, 11)
    # the quantized base computes what a float model holding the dequantized weights computes
    with torch.no_grad():
        reference.lm_head.weight = nn.Parameter(reference.lm_head.weight.detach().clone())  # untie
        for name, module in list(reference.named_modules()):
            if isinstance(module, nn.Linear):
                quantized = model.base_model.model.get_submodule(name)
                quantized = getattr(quantized, "base_layer", quantized)
                module.weight.copy_(quantized.dequantized_weight())
    with torch.inference_mode():
        assert _rel(base_logits, reference(ids).logits) < 0.05  # 2% per layer, compounded over 15 layers

"""The fast loader gives the same model as transformers' ``from_pretrained`` (tiny preset, saved to disk)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from core_model.config import config_from_preset
from core_model.errors import BaseModelError
from core_model.fast_load import can_fast_load, fast_load
from core_model.model import DSuiteForCausalLM


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = DSuiteForCausalLM(config_from_preset("tiny")).eval()
    model.save_pretrained(tmp_path)
    return tmp_path


def test_fast_load_equals_from_pretrained(saved):
    assert can_fast_load(saved)
    slow = AutoModelForCausalLM.from_pretrained(saved).eval()
    fast = fast_load(saved)
    slow_state, fast_state = slow.state_dict(), fast.state_dict()
    assert slow_state.keys() == fast_state.keys()
    for name in slow_state:
        assert torch.equal(slow_state[name], fast_state[name]), name
    assert fast.lm_head.weight is fast.model.embed_tokens.weight  # tied, as from_pretrained ties it
    x = torch.randint(0, 256, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(slow(x).logits, fast(x).logits)
        assert torch.equal(slow.generate(x, max_new_tokens=5, do_sample=False),
                           fast.generate(x, max_new_tokens=5, do_sample=False))


def test_fast_load_applies_overrides_and_dtype(saved):
    model = fast_load(saved, "bfloat16", {"attention_mode": "sliding", "window": 4})
    assert model.config.attention_mode == "sliding" and model.config.window == 4
    assert next(model.parameters()).dtype == torch.bfloat16


def test_unknown_override_says_which(saved):
    with pytest.raises(BaseModelError, match="nonsense_knob"):
        fast_load(saved, overrides={"nonsense_knob": 3})


def test_weights_that_do_not_fit_are_refused(saved):
    import json

    config = json.loads((saved / "config.json").read_text())
    config["num_hidden_layers"] += 1
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(BaseModelError, match="do not fit"):
        fast_load(saved)


def test_other_architectures_are_not_fast_loaded(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not can_fast_load(tmp_path)

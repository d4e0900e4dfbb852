"""Router and hybrid-gate calibration on the tiny preset: the fits reduce their losses and round-trip."""

from __future__ import annotations

import json

import pytest
import torch

from core_model.calibrate import CALIBRATION_DIR, fit_hybrid_gate, fit_router, load_calibration
from core_model.config import config_from_preset
from core_model.errors import DSuiteError
from core_model.fingerprint import fingerprint
from core_model.model import DSuiteForCausalLM


def tiny(**overrides) -> DSuiteForCausalLM:
    torch.manual_seed(0)
    return DSuiteForCausalLM(config_from_preset("tiny", **overrides)).eval()


def test_router_fit_lowers_cross_entropy_and_picks_high_energy_experts():
    moe = tiny().model.layers[1].mlp
    x = torch.randn(256, 64)
    start = fit_router(moe, x, steps=1)
    end = fit_router(moe, x, steps=150)
    assert end < start
    with torch.no_grad():
        energy = torch.stack([e(x).pow(2).sum(-1) for e in moe.experts], -1)
        chosen = moe.gate(x).argmax(-1)
    assert (chosen == energy.argmax(-1)).float().mean() > 0.5  # 4 experts: chance is 0.25


def test_hybrid_gate_fit_beats_a_fixed_half_gate():
    model = tiny(attention_mode="hybrid")
    attn, config = model.model.layers[0].self_attn, model.config
    x = torch.randn(2, 32, 64)
    cos, sin = model.model.rotary_emb(torch.arange(32)[None].expand(2, -1), torch.float32)
    half = fit_hybrid_gate(attn, x, cos, sin, config, steps=1, lr=0.0)  # gate 0.5 everywhere
    fitted = fit_hybrid_gate(attn, x, cos, sin, config, steps=100)
    assert fitted < half


def test_calibration_file_loads_only_on_its_base(tmp_path):
    from safetensors.torch import save_file

    model = tiny()
    model.save_pretrained(tmp_path)
    folder = tmp_path / CALIBRATION_DIR
    folder.mkdir()
    router = torch.randn(4, 64)
    save_file({"model.layers.1.mlp.gate.weight": router}, str(folder / "calibration.safetensors"))
    record = {"fingerprint": fingerprint(tmp_path), "window": 8, "stride": 4, "sink_tokens": 2}
    (folder / "calibration.json").write_text(json.dumps(record))
    assert fingerprint(tmp_path) == record["fingerprint"]  # the calibration folder is outside the fingerprint
    load_calibration(model, tmp_path)
    assert torch.equal(model.model.layers[1].mlp.gate.weight, router)
    (folder / "calibration.json").write_text(json.dumps({**record, "fingerprint": "sha256:other"}))
    with pytest.raises(DSuiteError, match="fitted on base sha256:other"):
        load_calibration(model, tmp_path)

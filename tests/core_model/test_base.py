"""The embedded base: prepared once, cached, fingerprinted, and it answers."""

from __future__ import annotations

import json
import time

import pytest

from core_model import load_base
from core_model.base import embedded_base_dir, embedded_hf_dir, prepare_embedded
from core_model.embedded import find_embedded_gguf
from core_model.errors import BaseModelError
from core_model.fingerprint import compute_fingerprint, fingerprint
from core_model.generation import GenerationSettings, generate
from tests.conftest import invoke_dsuite


def test_embedded_gguf_is_found_without_importing_the_package():
    path = find_embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_prepare_is_cached(tmp_path):
    start = time.perf_counter()
    folder = prepare_embedded()
    assert time.perf_counter() - start < 2.0  # already prepared: no conversion again
    assert folder == embedded_base_dir()  # the converted checkpoint is the default base
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert json.loads((folder / "config.json").read_text())["model_type"] == "dsuite"
    reference = embedded_hf_dir()  # the Llama checkpoint stays beside it as the parity reference
    assert json.loads((reference / "config.json").read_text())["model_type"] == "llama"


def test_fingerprint_is_stable_and_cached(embedded_base):
    assert embedded_base.fingerprint.startswith("sha256:")
    assert fingerprint(embedded_base.path) == embedded_base.fingerprint


def test_fingerprint_changes_with_the_weights(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"a": 1, "transformers_version": "x"}))
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 64)
    first = compute_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"a": 1, "transformers_version": "y"}))
    assert compute_fingerprint(tmp_path) == first  # the library version is not part of the model
    (tmp_path / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 63)
    assert compute_fingerprint(tmp_path) != first


def test_bad_base_path_raises_clear_error(tmp_path):
    with pytest.raises(BaseModelError, match="does not exist"):
        load_base(tmp_path / "missing")


def test_a_damaged_base_folder_is_a_clear_error(tmp_path, embedded_base):
    """A weights file cut short and a tokenizer.json from elsewhere: BaseModelError naming what to do, not
    the safetensors or tokenizers exception."""
    import torch

    from core_model.config import config_from_preset
    from core_model.model import DSuiteForCausalLM

    torch.manual_seed(0)
    cut, tokenizer = tmp_path / "cut", tmp_path / "tokenizer"
    for folder in (cut, tokenizer):
        DSuiteForCausalLM(config_from_preset("tiny")).save_pretrained(folder)
        embedded_base.tokenizer.save_pretrained(folder)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(BaseModelError, match="truncated model.safetensors"):
        load_base(cut)
    (tokenizer / "tokenizer.json").write_text('{"version": "1.0"}')
    with pytest.raises(BaseModelError, match="Could not read the tokenizer"):
        load_base(tokenizer)


def test_base_answers_the_capital_of_france(embedded_base):
    reply = generate(embedded_base, "What is the capital of France?", GenerationSettings(max_new_tokens=24))
    assert "Paris" in reply


def test_generation_settings_reject_bad_values():
    from core_model.errors import DSuiteError

    with pytest.raises(DSuiteError, match="temperature"):
        GenerationSettings(temperature=-1)
    with pytest.raises(DSuiteError, match="max_new_tokens"):
        GenerationSettings(max_new_tokens=0)


def test_cli_generate_offline_answers_paris():
    proc = invoke_dsuite("generate", "What is the capital of France?", "--max-new-tokens", "24")
    assert proc.returncode == 0, proc.stderr
    assert "Paris" in proc.stdout


def test_cli_base_info_json_loads_cached_base():
    proc = invoke_dsuite("base", "info", "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"path", "fingerprint", "parameters"} <= set(info)
    assert info["fingerprint"].startswith("sha256:")
    assert info["parameters"] > 100_000_000 and info["tokenizer_vocab"] == info["vocab_size"]


def test_cli_base_info_load_builds_the_model_and_agrees():
    proc = invoke_dsuite("base", "info", "--json", "--load")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["architecture"] == "DSuiteForCausalLM" and info["load_seconds"] > 0
    assert info["overrides"] == {} and info["parameters"] > 100_000_000


def test_cli_base_info_reports_a_truncated_checkpoint(tmp_path):
    import shutil

    from core_model.base import resolve_base_path

    source = resolve_base_path(None)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, tmp_path / name)
    (tmp_path / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes()[:4096])
    proc = invoke_dsuite("base", "info", "--base", str(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "dsuite base prepare --force" in proc.stderr


def test_prepared_base_records_its_conversion_version(tmp_path):
    from core_model.base import _conversion_version
    from core_model.conversion_files import CONVERSION_VERSION

    assert _conversion_version(prepare_embedded()) == CONVERSION_VERSION
    assert _conversion_version(tmp_path) == 1  # prepared before versions were recorded: converted again

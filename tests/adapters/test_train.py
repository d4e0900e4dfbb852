"""Training on a tiny base: record validation, completion-only loss, learning, checkpoints and resume."""

from __future__ import annotations

import json

import pytest
import torch

from adapters.config import LoraTrainConfig
from adapters.data import encode, load_examples, write_jsonl
from adapters.train import train_adapter
from core_model.errors import DSuiteError
from tests.adapters.conftest import crash_after_first_checkpoint

COLOURS = ["red", "green", "blue"]


@pytest.fixture
def colour_data(tmp_path):
    records = [{"prompt": f"Colour of item {i}?", "completion": COLOURS[i % 3]} for i in range(30)]
    records += [
        {
            "messages": [
                {"role": "user", "content": f"Item {i} colour?"},
                {"role": "assistant", "content": "red"},
            ]
        }
        for i in range(6)
    ]
    return write_jsonl(tmp_path / "colours.jsonl", records)


def test_bad_records_name_their_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n\n{"text": "no"}\n')
    with pytest.raises(DSuiteError, match=r"bad.jsonl:3: record has keys \['text'\]"):
        load_examples(path)
    path.write_text('{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}\n')
    with pytest.raises(DSuiteError, match="bad.jsonl:1: the last turn has role 'user'"):
        load_examples(path)
    path.write_text("{oops\n")
    with pytest.raises(DSuiteError, match="bad.jsonl:1: not valid JSON"):
        load_examples(path)


def test_encode_keeps_completion_and_end_token(colour_data, tiny_base):
    example = load_examples(colour_data)[0]
    prompt, completion = encode(tiny_base.tokenizer, example, max_length=64)
    assert completion[-1] == tiny_base.tokenizer.eos_token_id
    assert tiny_base.tokenizer.decode(completion[:-1]) == "red"
    assert tiny_base.tokenizer.decode(prompt).rstrip().endswith("assistant")


def test_training_learns_registers_and_resumes(colour_data, tiny_base, registry, monkeypatch):
    config = LoraTrainConfig.preset("tiny").with_(max_steps=6, checkpoint_every=3, lr=3e-2)
    full = train_adapter(
        "colours", colour_data, base=tiny_base, config=config, registry=registry, progress=False
    )
    training = full.meta["training"]
    assert 0 < training["trainable_share"] < 0.05
    assert training["steps"] == 6 and full.meta["base_fingerprint"] == tiny_base.fingerprint
    assert training["losses"][-1] < training["losses"][0] - 0.2  # it learns the colours
    assert json.loads((full.path / "adapter_config.json").read_text())["r"] == 4
    assert not (registry.root / ".checkpoints" / "colours").exists()

    # interrupt a second, identical run right after its first checkpoint, then resume it
    with crash_after_first_checkpoint(monkeypatch):
        train_adapter(
            "colours", colour_data, base=tiny_base, config=config, registry=registry, progress=False
        )
    resumed = train_adapter(
        "colours", colour_data, base=tiny_base, config=config, registry=registry, resume=True, progress=False
    )
    assert resumed.meta["training"]["resumed_from_step"] == 3 and resumed.version == 2
    _, a, _ = registry.load(full, tiny_base.fingerprint)
    _, b, _ = registry.load(resumed, tiny_base.fingerprint)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_one_run_per_adapter_name_at_a_time(colour_data, tiny_base, registry):
    """While a run trains ``colours``, a second one is refused before it reads or writes the checkpoint (it
    names the process holding the lock); other names train meanwhile, and ``colours`` trains once it ends."""
    import os

    from adapters.train import checkpoint_dir, training_lock

    config = LoraTrainConfig.preset("tiny").with_(max_steps=1)
    settings = dict(base=tiny_base, config=config, registry=registry, progress=False)
    held = rf"Another run is training 'colours' .*\(process {os.getpid()}\)"
    with training_lock(registry, "colours"):
        with pytest.raises(DSuiteError, match=held):
            train_adapter("colours", colour_data, **settings)
        assert not checkpoint_dir(registry, "colours").exists() and registry.versions("colours") == []
        assert train_adapter("shades", colour_data, **settings).key == "shades@1"
    assert train_adapter("colours", colour_data, **settings).key == "colours@1"


def test_resume_refuses_other_data(colour_data, tiny_base, registry, tmp_path, monkeypatch):
    config = LoraTrainConfig.preset("tiny").with_(max_steps=4, checkpoint_every=2)

    with crash_after_first_checkpoint(monkeypatch):
        train_adapter("c2", colour_data, base=tiny_base, config=config, registry=registry, progress=False)
    other = write_jsonl(tmp_path / "other.jsonl", [{"prompt": "p", "completion": "q"}] * 4)
    with pytest.raises(DSuiteError, match="belongs to a run with other data"):
        train_adapter(
            "c2", other, base=tiny_base, config=config, registry=registry, resume=True, progress=False
        )


def test_bad_settings():
    with pytest.raises(DSuiteError, match="rank r must be >= 1"):
        LoraTrainConfig(r=0)
    with pytest.raises(DSuiteError, match="Unknown LoRA training settings"):
        LoraTrainConfig.from_dict({"rank": 4})
    assert LoraTrainConfig.from_dict({"target_modules": "q_proj, k_proj"}).target_modules == (
        "q_proj",
        "k_proj",
    )
    assert LoraTrainConfig.from_dict({"layers": "1, 0, 1"}).layers == (0, 1)
    assert LoraTrainConfig(layers="18-20, 25").layers == (18, 19, 20, 25)
    for bad in ("", "top", [-1], "-1", "5-3"):
        with pytest.raises(DSuiteError, match="decoder layer indices"):
            LoraTrainConfig(layers=bad)


def test_training_only_the_top_layers(colour_data, tiny_base, registry):
    """LoRA on layer 1 of the two: only its modules get factors, and the manager serves them."""
    from adapters.manager import AdapterManager
    from adapters.requests import GenerationRequest

    config = LoraTrainConfig.preset("tiny").with_(max_steps=3, layers=(1,))
    ref = train_adapter("top", colour_data, base=tiny_base, config=config, registry=registry, progress=False)
    _, tensors, _ = registry.load(ref, tiny_base.fingerprint)
    assert tensors and all(".layers.1." in key for key in tensors)
    assert ref.meta["training"]["settings"]["layers"] == [1]
    manager = AdapterManager(tiny_base, registry)
    try:
        [out] = manager.generate(
            [GenerationRequest(prompt="Colour of item 1?", adapter="top", max_new_tokens=2)]
        )
        assert out.adapter == ref.key
    finally:
        manager.close()
    with pytest.raises(DSuiteError, match="has 2 decoder layers, 0 to 1"):
        train_adapter(
            "top",
            colour_data,
            base=tiny_base,
            config=config.with_(layers=(5,)),
            registry=registry,
            progress=False,
        )


def test_training_device_defaults_to_what_torch_sees_and_names_bad_ones():
    from adapters.train import training_device

    assert training_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert training_device("cpu") == torch.device("cpu")
    with pytest.raises(DSuiteError, match="not a device"):
        training_device("gpu please")
    with pytest.raises(DSuiteError, match="cpu or cuda"):
        training_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(DSuiteError, match="sees no CUDA GPU.*--device cpu"):
            training_device("cuda")

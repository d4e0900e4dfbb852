"""Shipped adapters (``data/<domain>/adapter/``) install themselves into a registry that lacks them."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import save_file

from adapters.errors import AdapterBaseMismatchError, AdapterNotFoundError
from adapters.manager import AdapterManager
from adapters.requests import GenerationRequest
from adapters.shipped import install_shipped, shipped_adapters
from tests.adapters.conftest import random_lora


def _ship(root, base, name="helper", domain="support", fingerprint=None, retrain=None):
    """Write one shipped adapter folder ``root/<domain>/adapter`` (random LoRA on ``base``)."""
    tensors, config = random_lora(base, seed=3)
    folder = root / domain / "adapter"
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "DATA_CARD.md").write_text("# Training data of adapter `helper`\n")
    meta = {
        "adapter": f"{name}@4",
        "base_fingerprint": fingerprint or base.fingerprint,
        "training": {"steps": 7},
    }
    if retrain:
        meta["retrain"] = retrain
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def test_first_request_installs_the_shipped_copy_once(tiny_base, registry, tmp_path):
    root = tmp_path / "data"
    folder = _ship(root, tiny_base)
    (root / "other").mkdir()  # a domain folder without an adapter is skipped
    assert shipped_adapters(root) == {"helper": folder}
    manager = AdapterManager(tiny_base, registry, shipped=root)
    try:
        assert registry.names() == []  # nothing is installed before it is asked for
        result = manager.generate([GenerationRequest(prompt="Say hello", adapter="helper", max_new_tokens=4)])
        assert result[0].adapter == "helper@1"
        ref = registry.resolve("helper")
        assert ref.meta["training"] == {"steps": 7}
        assert registry.show("helper")["data_card"].startswith("# Training data of adapter `helper`")
        assert (ref.path / "adapter_model.safetensors").read_bytes() == (
            folder / "adapter_model.safetensors"
        ).read_bytes()
        assert manager.resolve("helper@1").key == "helper@1"
        assert install_shipped(registry, "helper", tiny_base.fingerprint, root) is None  # already there
        assert registry.versions("helper") == [1]
        with pytest.raises(AdapterNotFoundError):
            manager.resolve("not_shipped")
    finally:
        manager.close()


def test_a_copy_for_another_base_is_refused_with_the_way_out(tiny_base, registry, tmp_path):
    root = tmp_path / "data"
    _ship(root, tiny_base, fingerprint="sha256:another", retrain="`dsuite demo train-helper`")
    manager = AdapterManager(tiny_base, registry, shipped=root)
    try:
        with pytest.raises(AdapterBaseMismatchError, match="dsuite demo train-helper"):
            manager.resolve("helper")
        assert registry.names() == []
    finally:
        manager.close()


def test_shipped_none_installs_nothing(tiny_base, registry, tmp_path):
    root = tmp_path / "data"
    _ship(root, tiny_base)
    manager = AdapterManager(tiny_base, registry, shipped=None)
    try:
        with pytest.raises(AdapterNotFoundError):
            manager.resolve("helper")
    finally:
        manager.close()


def test_processes_asking_at_once_install_the_shipped_copy_once(tiny_base, registry, tmp_path):
    import subprocess
    import sys

    root = tmp_path / "data"
    _ship(root, tiny_base)
    script = (
        "import sys; from pathlib import Path; from adapters.registry import Registry; "
        "from adapters.shipped import install_shipped; "
        "ref = install_shipped(Registry(sys.argv[1]), 'helper', sys.argv[2], Path(sys.argv[3])); "
        "print(ref.key if ref else '-')"
    )
    args = [sys.executable, "-c", script, str(registry.root), tiny_base.fingerprint, str(root)]
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert sorted(outputs) == ["-", "-", "-", "helper@1"] and registry.versions("helper") == [1]


def test_a_registry_whose_versions_fit_no_longer_gets_the_shipped_copy_as_next_version(
    tiny_base, registry, tmp_path
):
    """An older install (trained for a base whose conversion changed) is upgraded on a bare-name request;
    an explicit version stays what it is, and a version trained for this base is never replaced."""
    root = tmp_path / "data"
    folder = _ship(root, tiny_base)
    tensors, config = random_lora(tiny_base, seed=5)
    registry.register("helper", tensors, config, base_fingerprint="sha256:an-older-conversion")
    manager = AdapterManager(tiny_base, registry, shipped=root)
    try:
        assert manager.resolve("helper@1").base_fingerprint == "sha256:an-older-conversion"
        assert registry.versions("helper") == [1]  # an explicit version is not upgraded
        ref = manager.resolve("helper")
        assert ref.key == "helper@2" and ref.base_fingerprint == tiny_base.fingerprint
        assert (ref.path / "adapter_model.safetensors").read_bytes() == (
            folder / "adapter_model.safetensors"
        ).read_bytes()
        registry.register("helper", tensors, config, base_fingerprint=tiny_base.fingerprint)  # the user's own
        assert manager.resolve("helper").key == "helper@3"
        registry.alias("helper", "latest", 1)  # the user points latest back at the old version
        assert manager.resolve("helper").key == "helper@1"  # versions for this base exist: no install
        assert registry.versions("helper") == [1, 2, 3]
    finally:
        manager.close()


def test_ship_writes_a_copy_that_a_fresh_registry_installs_as_it_was(tiny_base, registry, tmp_path):
    from adapters.registry import Registry
    from adapters.shipped import ship

    source = _ship(tmp_path / "given", tiny_base)
    ref = registry.register_folder(
        "helper", source, base_fingerprint=tiny_base.fingerprint, training={"steps": 7}, data_card="# card\n"
    )
    folder = tmp_path / "data" / "support" / "adapter"
    meta = ship(ref, folder, "`dsuite helper train`", training_records=3)
    assert meta["adapter"] == "helper@1" and meta["retrain"] == "`dsuite helper train`"
    assert json.loads((folder / "meta.json").read_text()) == meta
    assert meta["training_records"] == 3 and meta["training"] == {"steps": 7}
    fresh = Registry(tmp_path / "fresh")
    installed = install_shipped(fresh, "helper", tiny_base.fingerprint, tmp_path / "data")
    assert installed.key == "helper@1" and fresh.show("helper")["data_card"] == "# card\n"
    assert (installed.path / "adapter_model.safetensors").read_bytes() == (
        source / "adapter_model.safetensors"
    ).read_bytes()


def test_train_and_ship_trains_registers_and_ships_with_the_record_count(tiny_base, tmp_path, monkeypatch):
    from adapters.config import LoraTrainConfig
    from adapters.data import write_jsonl
    from adapters.registry import Registry
    from adapters.shipped import train_and_ship

    monkeypatch.delenv("DSUITE_REGISTRY", raising=False)
    monkeypatch.delenv("DSUITE_ADAPTERS", raising=False)
    monkeypatch.setenv("DSUITE_HOME", str(tmp_path / "home"))
    data = write_jsonl(tmp_path / "yn.jsonl", [{"prompt": f"q{i}", "completion": "yes"} for i in range(12)])
    folder = tmp_path / "data" / "support" / "adapter"
    result = train_and_ship(
        "yn",
        data,
        folder,
        retrain="`retrain yn`",
        config=LoraTrainConfig(max_steps=1, checkpoint_every=0),
        card=lambda records: f"# Training data of adapter `yn`: {records} records\n",
        base=str(tiny_base.path),
        epochs=1.0,
    )
    assert result["adapter"] == "yn@1" and result["shipped"] == str(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert (meta["training_records"], meta["epochs"], meta["retrain"]) == (12, 1.0, "`retrain yn`")
    assert "12 records" in (folder / "DATA_CARD.md").read_text()
    assert Registry().versions("yn") == [1]
    assert Registry().exemplars(Registry().resolve("yn")) == []  # a pipeline's adapter: never routed chat


def test_an_eval_system_installs_the_shipped_copy_on_a_fresh_registry(embedded_base, tmp_path, monkeypatch):
    """The finance advisor drafts through eval.systems: on a fresh clone's empty registry its adapter is the
    shipped copy, not the bare base after a warning."""
    from adapters.registry import Registry
    from eval.systems import _adapter_folder

    monkeypatch.setenv("DSUITE_REGISTRY", str(tmp_path / "fresh"))
    monkeypatch.delenv("DSUITE_ADAPTERS", raising=False)
    folder, digest = _adapter_folder("finance", embedded_base)
    registry = Registry()
    assert registry.names() == ["finance"] and folder == registry.resolve("finance").path
    assert digest == registry.resolve("finance").content_hash

"""Registry: versions, aliases, rollback, removal, atomic writes, refusal of tampered or foreign adapters."""

from __future__ import annotations

import pytest

from adapters.errors import AdapterBaseMismatchError, AdapterIntegrityError, AdapterNotFoundError
from adapters.registry import WEIGHTS_FILE, Registry
from core_model.errors import DSuiteError
from tests.adapters.conftest import random_lora


def _register(registry, tiny_base, name="demo", seed=0, **kwargs):
    tensors, config = random_lora(tiny_base, seed)
    return registry.register(name, tensors, config, base_fingerprint=tiny_base.fingerprint, **kwargs)


def test_versions_aliases_rollback_remove(registry, tiny_base):
    first = _register(registry, tiny_base, seed=1, metrics={"acc": 0.5})
    second = _register(registry, tiny_base, seed=2)
    assert (first.key, second.key) == ("demo@1", "demo@2")
    assert registry.resolve("demo").version == 2
    assert registry.resolve("demo@v1").version == 1
    assert second.meta["parent"] == "demo@1"
    assert first.content_hash != second.content_hash and first.content_hash.startswith("sha256:")
    registry.alias("demo", "stable", 1)
    assert registry.resolve("demo@stable").version == 1
    assert registry.rollback("demo").version == 1
    assert registry.resolve("demo").version == 1
    assert registry.show("demo@1")["metrics"] == {"acc": 0.5}
    assert registry.remove("demo@2") == ["demo@2"]
    assert registry.versions("demo") == [1]
    with pytest.raises(AdapterNotFoundError, match="no version 2"):
        registry.resolve("demo@2")
    registry.remove("demo")
    assert registry.names() == []
    assert not [p for p in registry.root.rglob("*") if p.name.startswith((".incoming", ".removed"))]


def test_other_process_view_is_fresh(registry, tiny_base):
    """A second Registry object on the same folder (as another process would) sees new versions at once."""
    other = Registry(registry.root)
    before = other.state()
    _register(registry, tiny_base)
    assert other.resolve("demo").version == 1
    assert other.state() != before


def test_tampered_adapter_is_refused(registry, tiny_base):
    ref = _register(registry, tiny_base)
    registry.load(ref, tiny_base.fingerprint)  # loads fine first
    weights = ref.path / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one byte
    weights.write_bytes(bytes(data))
    with pytest.raises(AdapterIntegrityError, match="failed its integrity check"):
        registry.load("demo", tiny_base.fingerprint)


def test_adapter_of_another_base_is_refused(registry, tiny_base):
    tensors, config = random_lora(tiny_base, 0)
    registry.register("foreign", tensors, config, base_fingerprint="sha256:0123456789abcdef")
    with pytest.raises(AdapterBaseMismatchError, match="trained on base sha256:0123456789abcdef"):
        registry.load("foreign", tiny_base.fingerprint)


def test_bad_names_and_pickles_are_refused(registry, tiny_base, tmp_path):
    with pytest.raises(DSuiteError, match="not valid"):
        _register(registry, tiny_base, name="bad/name")
    folder = tmp_path / "peft_bin"
    folder.mkdir()
    (folder / "adapter_model.bin").write_bytes(b"not loaded")
    (folder / "adapter_config.json").write_text("{}")
    with pytest.raises(DSuiteError, match="pickled .bin"):
        registry.register_folder("x", folder, base_fingerprint=tiny_base.fingerprint)
    with pytest.raises(AdapterNotFoundError, match="Train one"):
        registry.resolve("missing")

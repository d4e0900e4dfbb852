"""The shipped DST adapter installs itself on a machine that has never trained it (a fresh clone)."""

import json

import pytest

from adapters import AdapterManager, Registry
from adapters.errors import AdapterBaseMismatchError, AdapterNotFoundError
from adapters.shipped import install_shipped, shipped_adapters
from domains.customer_service.dst_adapter import ADAPTER_NAME, AdapterTracker
from domains.customer_service.dst_training import SHIPPED_ADAPTER


def test_fresh_registry_gets_the_shipped_adapter(embedded_base, tmp_path):
    assert shipped_adapters()[ADAPTER_NAME] == SHIPPED_ADAPTER
    registry = Registry(tmp_path / "registry")
    manager = AdapterManager(embedded_base, registry)
    try:
        with pytest.raises(AdapterNotFoundError):
            manager.resolve("astronomy")  # not shipped: trained by the user
        assert registry.names() == []
        states = AdapterTracker(manager).track(
            [[{"system": "", "user": "I need a cheap hotel in the north."}]]
        )
        assert states[0][0]  # the adapter tracked the turn
        ref = registry.resolve(ADAPTER_NAME)
        shipped = json.loads((SHIPPED_ADAPTER / "meta.json").read_text())
        assert ref.meta["base_fingerprint"] == shipped["base_fingerprint"] == embedded_base.fingerprint
        assert (ref.path / "adapter_model.safetensors").read_bytes() == (
            SHIPPED_ADAPTER / "adapter_model.safetensors"
        ).read_bytes()
        assert "MultiWOZ" in registry.show(ADAPTER_NAME)["data_card"]
        manager.resolve(f"{ADAPTER_NAME}@1")
        assert registry.versions(ADAPTER_NAME) == [1]  # not registered twice
    finally:
        manager.close()


def test_shipped_adapter_refuses_another_base(tmp_path):
    with pytest.raises(AdapterBaseMismatchError, match="dsuite cs train-dst"):
        install_shipped(Registry(tmp_path / "registry"), ADAPTER_NAME, base_fingerprint="sha256:another")

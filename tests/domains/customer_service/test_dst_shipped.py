"""The shipped DST adapter registers itself on a machine that has never trained it (a fresh clone)."""

import json

import pytest

from adapters import AdapterManager, Registry
from core_model.errors import DSuiteError
from domains.customer_service.dst_adapter import ADAPTER_NAME, AdapterTracker
from domains.customer_service.dst_training import SHIPPED_ADAPTER, ensure_available, ensure_registered


def test_fresh_registry_gets_the_shipped_adapter(embedded_base, tmp_path):
    registry = Registry(tmp_path / "registry")
    manager = AdapterManager(embedded_base, registry)
    try:
        ensure_available(manager, None)
        ensure_available(manager, "finance")
        assert registry.names() == []  # only the tracker's own adapter is registered on demand
        AdapterTracker(manager)  # the default adapter name
        ref = registry.resolve(ADAPTER_NAME)
        shipped = json.loads((SHIPPED_ADAPTER / "meta.json").read_text())
        assert ref.meta["base_fingerprint"] == shipped["base_fingerprint"] == embedded_base.fingerprint
        assert (ref.path / "adapter_model.safetensors").read_bytes() == (
            SHIPPED_ADAPTER / "adapter_model.safetensors"
        ).read_bytes()
        ensure_available(manager, f"{ADAPTER_NAME}@1")
        assert len(registry.versions(ADAPTER_NAME)) == 1  # not registered twice
    finally:
        manager.close()


def test_shipped_adapter_refuses_another_base(tmp_path):
    with pytest.raises(DSuiteError, match="retrain it with `dsuite cs train-dst"):
        ensure_registered(Registry(tmp_path / "registry"), base_fingerprint="sha256:another")

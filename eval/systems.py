"""Turn a ``SystemSpec`` into a loaded model: the base, or the base with a registered LoRA adapter.

The bare base comes from ``core_model.load_base``. An adapter is resolved through the ``adapters``
package (imported lazily: it may be absent while it is being written) and applied to a private copy
of the base weights, so the shared cached base stays untouched.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_model.errors import DSuiteError
from eval.registry import SystemSpec

logger = logging.getLogger(__name__)


@dataclass
class LoadedSystem:
    """A model ready to answer: weights (base or base+adapter), tokenizer and a fingerprint."""

    model: Any
    tokenizer: Any
    label: str
    fingerprint: str


_CACHE: dict[tuple[str | None, str | None], LoadedSystem] = {}
_LOCK = threading.Lock()


def load_system(system: SystemSpec) -> LoadedSystem:
    """Load the model a system spec names (cached per process).

    Args:
        system: ``SystemSpec(adapter=None)`` for the bare base, ``SystemSpec(adapter="name@version")``
            for the base with that adapter. Baselines are task-specific and have no model here.

    Raises:
        DSuiteError: the spec names a baseline, or the adapter cannot be resolved.
    """
    if system.baseline:
        raise DSuiteError(
            f"System '{system.label}' is a baseline, not a model: the task's predict must answer baselines "
            "itself instead of calling eval.model_io. Pass SystemSpec(adapter=...) or SystemSpec() for the "
            "model."
        )
    key = (system.base, system.adapter)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
    from core_model import load_base

    base = load_base(system.base)
    if system.adapter is None:
        loaded = LoadedSystem(base.model, base.tokenizer, "base", base.fingerprint)
    else:
        model, digest = _with_adapter(base, system.adapter)
        loaded = LoadedSystem(model, base.tokenizer, system.label, f"{base.fingerprint}+{digest}")
    with _LOCK:
        _CACHE[key] = loaded
    return loaded


def _adapter_folder(spec: str, base: Any) -> tuple[Path, str]:
    """Resolve ``name@version`` through the adapters registry to a peft adapter folder and its hash."""
    try:
        import adapters
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise DSuiteError(
            f"Cannot evaluate adapter '{spec}': the adapters package is not importable ({exc})."
        ) from exc
    registry_cls = getattr(adapters, "Registry", None)
    if registry_cls is None:
        raise DSuiteError(
            f"Cannot evaluate adapter '{spec}': adapters.Registry is not available in this checkout yet. "
            "Evaluate the bare base (no --adapter) or a baseline (--baseline NAME) until it lands."
        )
    registry = registry_cls() if not hasattr(adapters, "default_registry") else adapters.default_registry()
    entry = registry.resolve(spec)
    folder = getattr(entry, "path", None) or (entry.get("path") if isinstance(entry, dict) else entry)
    if folder is None:
        raise DSuiteError(f"Adapter registry resolved '{spec}' to {entry!r}, which names no folder.")
    expected = getattr(entry, "base_fingerprint", None)
    if expected and expected != base.fingerprint:
        raise DSuiteError(
            f"Adapter '{spec}' was trained on base {expected}, but the loaded base is {base.fingerprint}. "
            "Pass the matching --base or retrain the adapter on this base."
        )
    digest = getattr(entry, "content_hash", None) or getattr(entry, "hash", None) or Path(folder).name
    return Path(folder), str(digest)


def _with_adapter(base: Any, spec: str) -> tuple[Any, str]:
    """A copy of the base model with the adapter's LoRA weights merged in."""
    from peft import PeftModel

    folder, digest = _adapter_folder(spec, base)
    logger.info("applying adapter %s from %s to a copy of the base", spec, folder)
    model = copy.deepcopy(base.model)
    merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    return merged.eval(), digest


def clear_cache() -> None:
    """Forget loaded adapter systems (the base itself stays cached by ``core_model``)."""
    with _LOCK:
        _CACHE.clear()

"""Turn a ``SystemSpec`` into a loaded model: the base, or the base with a registered LoRA adapter.

The bare base comes from ``core_model.load_base``. An adapter is resolved through the ``adapters``
package (imported lazily: it may be absent while it is being written) and applied to a private copy
of the base weights, so the shared cached base stays untouched.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass, field
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
    engine: Any = None  # fp32 generation engine over ``model``, built on first use (``eval.model_io``)
    engine_unsupported: bool = False  # the engine cannot run this model (e.g. sliding attention)
    # one completion at a time per system (its engine's KV cache); other systems run alongside
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


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
    """Resolve ``name@version`` through the adapters registry, verified (hash, base), to its peft folder.

    The registry is ``adapters.Registry()`` (``adapters.registry.registry_root``: ``$DSUITE_REGISTRY``,
    ``$DSUITE_ADAPTERS`` or ``$DSUITE_HOME/adapters``).
    """
    try:
        from adapters import Registry
    except ImportError as exc:  # pragma: no cover - depends on the checkout
        raise DSuiteError(
            f"Cannot evaluate adapter '{spec}': the adapters package is not importable ({exc})."
        ) from exc
    from adapters.shipped import resolve_with_shipped

    registry = Registry()
    resolve_with_shipped(registry, spec, base.fingerprint)  # a fresh clone installs the shipped copy first
    ref, _tensors, _config = registry.load(spec, base.fingerprint)  # refuses hash or base mismatch
    return Path(ref.path), ref.content_hash or ref.key


def _with_adapter(base: Any, spec: str) -> tuple[Any, str]:
    """A copy of the base model with the adapter's LoRA weights merged in."""
    from peft import PeftModel

    folder, digest = _adapter_folder(spec, base)
    logger.info("applying adapter %s from %s to a copy of the base", spec, folder)
    model = copy.deepcopy(base.model)
    merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()  # plain weights, fast eval
    return merged.eval(), digest


def clear_cache() -> None:
    """Forget loaded adapter systems (the base itself stays cached by ``core_model``)."""
    with _LOCK:
        _CACHE.clear()

"""LoRA adapters: training, versioned registry, manager with mixed-adapter batches, router, continual.

Public API (imported lazily, so ``import adapters`` is cheap)::

    from adapters import train_adapter, LoraTrainConfig, Registry, AdapterManager, GenerationRequest, Router

    ref = train_adapter("fpb", "data/adapters_demo/fpb_sentiment.jsonl")   # -> AdapterRef "fpb@1"
    manager = AdapterManager(load_base(), Registry())
    manager.generate([GenerationRequest(prompt="...", adapter="fpb"), GenerationRequest(prompt="...")])
    manager.score_options(GenerationRequest(prompt="...", adapter="fpb@stable"), ["positive", "negative"])
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "LoraTrainConfig": "adapters.config",
    "train_adapter": "adapters.train",
    "heldout_examples": "adapters.train",
    "Registry": "adapters.registry",
    "AdapterRef": "adapters.registry",
    "AdapterManager": "adapters.manager",
    "GenerationRequest": "adapters.requests",
    "GenerationResult": "adapters.requests",
    "Router": "adapters.router",
    "RouteResult": "adapters.router",
    "ContinualLearner": "adapters.continual",
    "AdapterNotFoundError": "adapters.errors",
    "AdapterIntegrityError": "adapters.errors",
    "AdapterBaseMismatchError": "adapters.errors",
    "load_examples": "adapters.data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'adapters' has no attribute {name!r}")

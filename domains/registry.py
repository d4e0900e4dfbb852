"""The domain registry: every industry package registers one ``Domain`` object here.

The hub, the CLI and the eval harness discover domains from this one place. Domains are imported
lazily by name (``KNOWN_DOMAINS``), so importing ``domains`` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core_model.errors import DSuiteError

# name -> module that registers it on import
KNOWN_DOMAINS = {
    "finance": "domains.finance",
    "medical": "domains.medical",
    "customer_service": "domains.customer_service",
}


@dataclass
class Domain:
    """One industry: its adapter, the pipeline functions the CLI and apps call, its training set and tasks.

    Attributes:
        name: registry name (``finance``).
        title: human title for the apps (``Finance advisory``).
        adapter_name: the registry name of its LoRA adapter.
        description: a sentence for the hub.
        pipeline: named entry points (e.g. ``{"code": code_note}``) the CLI and apps call.
        build_training_set: ``build_training_set(out_path, limit=None) -> Path`` writing chat JSONL records.
        register_tasks: registers this domain's eval tasks (idempotent).
        examples: a few example requests for the hub and router documentation.
    """

    name: str
    title: str
    adapter_name: str
    description: str
    pipeline: dict[str, Callable[..., Any]] = field(default_factory=dict)
    build_training_set: Callable[..., Any] | None = None
    register_tasks: Callable[[], None] | None = None
    examples: list[str] = field(default_factory=list)


_DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain) -> Domain:
    """Add a domain (called by each domain package on import)."""
    _DOMAINS[domain.name] = domain
    return domain


def get_domain(name: str) -> Domain:
    """The domain registered as ``name``, importing its package on first use."""
    if name not in _DOMAINS and name in KNOWN_DOMAINS:
        importlib.import_module(KNOWN_DOMAINS[name])
    if name not in _DOMAINS:
        raise DSuiteError(f"Unknown domain '{name}'. Known domains: {', '.join(sorted(KNOWN_DOMAINS))}.")
    return _DOMAINS[name]


def load_all() -> list[Domain]:
    """Import every known domain that is installed and return them (registering their eval tasks)."""
    found = []
    for name, module in KNOWN_DOMAINS.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue  # that domain package is not present yet
            raise
        if name in _DOMAINS:
            domain = _DOMAINS[name]
            if domain.register_tasks:
                domain.register_tasks()
            found.append(domain)
    return found

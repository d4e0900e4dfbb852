"""The shared objects every app uses: the base model, the adapter registry, the manager and the router.

Created lazily on first use (importing an app module stays cheap) and once per process, under a lock,
so the hub and every tab share one base model in memory. The registry is re-read on every request by the
manager, and the router is rebuilt when the registry changes: an adapter registered while the server runs
(from the admin page or another process) is served on the next request, without a restart.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache

logger = logging.getLogger(__name__)

BASE_ENV = "DSUITE_BASE"
_LOCK = threading.RLock()


def base_spec() -> str | None:
    """The base checkpoint the apps serve (``DSUITE_BASE``), or ``None`` for the embedded default."""
    return os.environ.get(BASE_ENV) or None


@lru_cache(maxsize=1)
def base():
    """The loaded base model (``core_model.Base``), shared by every app of this process."""
    from core_model import load_base

    with _LOCK:
        return load_base(base_spec())


@lru_cache(maxsize=1)
def registry():
    """The adapter registry the hub and the admin page serve, the same one `dsuite adapters` uses.

    Its folder comes from :func:`adapters.registry.registry_root`: ``$DSUITE_REGISTRY``, else
    ``$DSUITE_ADAPTERS`` (the older name), else ``$DSUITE_HOME/adapters``; setting both to different folders
    is an error.
    """
    from adapters import Registry

    return Registry()


@lru_cache(maxsize=1)
def manager():
    """The adapter manager serving every app's generation requests."""
    from adapters import AdapterManager

    with _LOCK:
        return AdapterManager(base(), registry())


@lru_cache(maxsize=1)
def router():
    """The request router over the registry's adapters (it refreshes itself when the registry changes)."""
    from apps.routing import LiveRouter

    with _LOCK:
        return LiveRouter(registry())


def domain_router():
    """The hub's domain router (``domains.routing``): which industry pipeline a request belongs to."""
    from domains.routing import load_domain_router

    with _LOCK:
        return load_domain_router()

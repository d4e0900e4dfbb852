"""Keep an ``adapters.Router`` in step with the registry, so the hub routes to adapters added while serving.

Before each request the registry's cheap ``state()`` stamp is compared with the last one seen; when it
changed (an adapter added, removed or rolled back), only the adapters whose served version changed have
their exemplars re-embedded. With no adapter registered the router abstains: the base model answers.
"""

from __future__ import annotations

import logging
import os
import threading

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

THRESHOLD_ENV = "DSUITE_ROUTER_THRESHOLD"
DEFAULT_THRESHOLD = 0.3  # below this confidence the hub answers with the base model (abstains)


def router_threshold() -> float:
    """The abstention threshold (``DSUITE_ROUTER_THRESHOLD``, default 0.3)."""
    raw = os.environ.get(THRESHOLD_ENV, str(DEFAULT_THRESHOLD))
    try:
        value = float(raw)
    except ValueError as exc:
        raise DSuiteError(f"{THRESHOLD_ENV}={raw!r} is not a number; give a confidence such as 0.3.") from exc
    if not 0 <= value <= 1:
        raise DSuiteError(f"{THRESHOLD_ENV} must be between 0 and 1, got {value}.")
    return value


class LiveRouter:
    """A router over the registry's adapters (their latest versions' exemplars), refreshed on change."""

    def __init__(self, registry, threshold: float | None = None) -> None:
        """Attach to ``registry`` (an ``adapters.Registry``); ``threshold`` defaults to the env setting."""
        from adapters import Router

        self.registry = registry
        self.router = Router(threshold=router_threshold() if threshold is None else threshold)
        self._served: dict[str, str] = {}  # adapter name -> "name@version" whose exemplars are indexed
        self._state: tuple | None = None
        self._lock = threading.Lock()

    def sync(self) -> None:
        """Re-read the registry if it changed; index the exemplars of new or moved adapters."""
        state = self.registry.state()
        if state == self._state:
            return
        with self._lock:
            if state == self._state:
                return
            current = {name: self.registry.resolve(name) for name in self.registry.names()}
            for name in set(self._served) - set(current):
                self.router.remove(name)
                del self._served[name]
            for name, ref in current.items():
                if self._served.get(name) == ref.key:
                    continue
                self.router.remove(name)
                exemplars = self.registry.exemplars(ref)
                if exemplars:
                    self.router.add(name, exemplars)
                    self._served[name] = ref.key
                    logger.info("router: %s indexed with %d exemplars", ref.key, len(exemplars))
                else:
                    self._served.pop(name, None)
                    logger.warning("router: %s has no exemplars and cannot be routed to", ref.key)
            self._state = state

    def route(self, text: str):
        """``RouteResult`` for ``text``: adapter name (``None``: the base answers), confidence, runners-up."""
        from adapters import RouteResult

        self.sync()
        if not self._served:
            return RouteResult(None, 0.0, [], None)
        return self.router.route(text)

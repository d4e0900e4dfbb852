"""Familiarity: how close a query lies to the in-scope training examples, for out-of-scope rejection.

A classifier's probability says which known intent a query is most like, not whether it is like any of them:
an out-of-scope query can get a confident probability from a head that must pick one of its classes. The
familiarity of a query is the cosine similarity of its (fine-tuned) embedding to its nearest in-scope
training example, read from a faiss index (8-bit scalar quantizer, inner product) saved with the model.
Before the rejection threshold the in-scope probabilities are multiplied by ``familiarity ** alpha``;
``alpha`` is chosen on the validation split like the threshold (``0`` turns familiarity off).
"""

from __future__ import annotations

from pathlib import Path

from core_model.errors import DSuiteError

INDEX_FILE = "familiarity.faiss"
ALPHAS = (0.0, 1.0, 2.0, 3.0, 4.0)


def build_index(embeddings):
    """A faiss inner-product index of unit embeddings (N, H), stored as 8-bit codes (H bytes a row)."""
    import faiss
    import numpy as np

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise DSuiteError(f"Familiarity needs a non-empty (N, H) array of embeddings, not {vectors.shape}.")
    quantizer, metric = faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    index = faiss.IndexScalarQuantizer(vectors.shape[1], quantizer, metric)
    index.train(vectors)
    index.add(vectors)
    return index


def save_index(index, folder: Path) -> Path:
    import faiss

    path = Path(folder) / INDEX_FILE
    faiss.write_index(index, str(path))
    return path


def load_index(folder: Path):
    """The saved index of a model folder.

    Raises:
        DSuiteError: the model uses familiarity but its index file is missing.
    """
    import faiss

    path = Path(folder) / INDEX_FILE
    if not path.is_file():
        raise DSuiteError(
            f"'{path}' is missing but the model's meta.json uses familiarity; retrain the intent model with "
            "`dsuite cs train-intents --dataset NAME`."
        )
    return faiss.read_index(str(path))


def joint(embeddings, heads: int):
    """Several heads' unit embeddings side by side (N, heads * H), scaled to unit rows: the inner product of
    two such rows is the average of the heads' cosine similarities (the familiarity of an ensemble)."""
    return embeddings / heads**0.5


def nearest_similarity(index, embeddings, batch_size: int = 4096):
    """Cosine similarity (N,) of each unit embedding to its nearest indexed training example."""
    import numpy as np

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if vectors.shape[1] != index.d:
        raise DSuiteError(f"Embeddings have {vectors.shape[1]} dimensions, the familiarity index {index.d}.")
    out = np.empty(len(vectors), dtype=np.float32)
    for start in range(0, len(vectors), batch_size):
        scores, _ = index.search(vectors[start : start + batch_size], 1)
        out[start : start + batch_size] = scores[:, 0]
    return out


def rescale(probs, familiarity, alpha: float, oos_column: int | None):
    """``probs`` (N, C) with the in-scope columns multiplied by ``clip(familiarity, 0, 1) ** alpha``.

    The out-of-scope column (when the model has one) is left as it is, so an unfamiliar query can also lose
    to it outright.
    """
    import numpy as np

    if not alpha:
        return probs
    factor = np.clip(np.asarray(familiarity, dtype=np.float64), 1e-6, 1.0) ** alpha  # (N,)
    out = np.asarray(probs, dtype=np.float64) * factor[:, None]
    if oos_column is not None:
        out[:, oos_column] = probs[:, oos_column]
    return out

"""The faiss index of ICD-10-CM code descriptions (all-MiniLM-L6-v2), built once and committed.

The shipped index holds the "core" codes: every category and 4-character subcategory of ICD-10-CM
(about 12k) plus every diagnosis code used in the CodiEsp train split and in the synonyms file, embedded
from their ``simple-icd-10-cm`` descriptions and stored as an 8-bit scalar-quantised inner-product index
(384 bytes per code, about 5 MB in ``data/medical/``), so users and tests never rebuild it.
``build_index(codes="all")`` embeds all ~98k codes instead (about 15x the time; on a busy 2-core CPU
that is hours).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import faiss
import numpy as np

from core_model.errors import DSuiteError
from domains.medical.embeddings import DIM, Embedder
from domains.medical.icd_codes import all_codes, describe, is_valid
from domains.medical.resources import MEDICAL_DATA

INDEX_FILE = MEDICAL_DATA / "icd10cm_minilm_sq8.faiss"
CODES_FILE = MEDICAL_DATA / "icd10cm_minilm_sq8.codes.json"
log = logging.getLogger(__name__)


@dataclass
class IcdIndex:
    """A faiss index whose row ``i`` is code ``codes[i]``."""

    index: faiss.Index
    codes: list[str]

    def search(self, vectors: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]:
        """Nearest codes per query vector.

        Args:
            vectors: ``(n, 384)`` L2-normalised query embeddings.
            k: how many codes per query.

        Returns:
            Per query, ``(code, cosine similarity)`` pairs, best first.
        """
        if len(vectors) == 0:
            return []
        scores, ids = self.index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        return [
            [(self.codes[i], float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i >= 0]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]


def core_codes() -> list[str]:
    """Categories and 4-character subcategories, plus the known CodiEsp-train and synonym codes."""
    from domains.medical.terms import synonym_codes

    chosen = {c for c in all_codes() if len(c.replace(".", "")) <= 4}
    try:
        from eval.data import codiesp

        chosen.update(code for case in codiesp.load("train") for code in case["codes"] if is_valid(code))
    except DSuiteError:
        log.warning("CodiEsp train split not found: the index holds the ICD-10-CM core codes only")
    chosen.update(code for code in synonym_codes() if is_valid(code))
    order = {code: i for i, code in enumerate(all_codes())}
    return sorted(chosen, key=order.__getitem__)


def build_index(out_dir: Path = MEDICAL_DATA, codes: str = "core") -> Path:
    """Embed ICD-10-CM descriptions and write the index and its code list (atomically).

    Args:
        out_dir: folder for the two files.
        codes: ``core`` (see the module docstring) or ``all`` (every code below block level).

    Returns:
        The path of the written index.
    """
    if codes not in ("core", "all"):
        raise DSuiteError(f"codes='{codes}' is not a code selection; expected 'core' or 'all'.")
    selected = core_codes() if codes == "core" else all_codes()
    texts = [describe(code) for code in selected]
    log.info("embedding %d ICD-10-CM descriptions", len(texts))
    vectors = Embedder(cache_size=0, batch_size=128).encode(texts, progress=True)
    index = faiss.IndexScalarQuantizer(DIM, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors)
    index.add(vectors)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / INDEX_FILE.name
    tmp = index_path.with_suffix(".tmp")
    faiss.write_index(index, str(tmp))
    tmp.replace(index_path)
    tmp_codes = out_dir / (CODES_FILE.name + ".tmp")
    tmp_codes.write_text(json.dumps(selected), encoding="utf-8")
    tmp_codes.replace(out_dir / CODES_FILE.name)
    return index_path


@lru_cache(maxsize=1)
def load_index() -> IcdIndex:
    """The shipped index (``data/medical/icd10cm_minilm_sq8.faiss``).

    Raises:
        DSuiteError: the index files are missing (rebuild with ``dsuite medical build-index``).
    """
    if not INDEX_FILE.is_file() or not CODES_FILE.is_file():
        raise DSuiteError(
            f"ICD-10-CM index not found at {INDEX_FILE}. Build it once with `dsuite medical build-index`."
        )
    index = faiss.read_index(str(INDEX_FILE))
    codes = json.loads(CODES_FILE.read_text(encoding="utf-8"))
    if index.ntotal != len(codes):
        raise DSuiteError(
            f"{INDEX_FILE} holds {index.ntotal} vectors but {CODES_FILE} lists {len(codes)} codes; "
            "rebuild both with `dsuite medical build-index`."
        )
    return IcdIndex(index, codes)

"""Loader for the FIBO glossary (``finance/fibo_glossary/terms.jsonl``), read in place."""

from __future__ import annotations

from functools import lru_cache

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_jsonl

CARD = "fibo_glossary"
FOLDER = "finance/fibo_glossary"
REQUIRED = ("term", "definition")


@lru_cache(maxsize=2)
def load_fibo_terms() -> tuple[dict, ...]:
    """All FIBO records (term, definition, synonyms, abbreviations, kind, module, source_iri...).

    Raises:
        DSuiteError: the file is missing or a record lacks a term or definition.
    """
    path = dataset_dir(FOLDER) / "terms.jsonl"
    if not path.is_file():
        raise DSuiteError(f"FIBO glossary file '{path}' not found; expected terms.jsonl in {FOLDER}/.")
    rows = []
    for number, record in enumerate(read_jsonl(path), start=1):
        missing = [key for key in REQUIRED if not str(record.get(key) or "").strip()]
        if missing:
            raise DSuiteError(f"{path}:{number}: record lacks {', '.join(missing)}; FIBO records need both.")
        rows.append(record)
    return tuple(rows)

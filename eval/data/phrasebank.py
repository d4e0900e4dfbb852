"""Loader for Financial PhraseBank v1.0 (``finance/financial_phrasebank/fpb_sentences.jsonl``).

License: CC BY-NC-SA 3.0 (non-commercial). The original has no split; ``fpb_split`` makes a fixed,
seed-free split by sentence id (every 5th id is test), so train and test never overlap.
"""

from __future__ import annotations

from functools import lru_cache

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_jsonl

CARD = "financial_phrasebank"
FOLDER = "finance/financial_phrasebank"
LABELS = ("negative", "neutral", "positive")
AGREEMENTS = ("100", "75", "66", "50")


@lru_cache(maxsize=2)
def load_phrasebank() -> tuple[dict, ...]:
    """All unique sentences: ``{"id", "sentence", "label", "agreement"}``."""
    path = dataset_dir(FOLDER) / "fpb_sentences.jsonl"
    rows = []
    for number, record in enumerate(read_jsonl(path), start=1):
        if record.get("label") not in LABELS:
            raise DSuiteError(f"{path}:{number}: label {record.get('label')!r} is not one of {LABELS}.")
        rows.append(record)
    return tuple(rows)


def fpb_split(split: str, min_agreement: str = "75") -> list[dict]:
    """Sentences of ``split`` ("train" or "test") whose annotator agreement is at least ``min_agreement``.

    Raises:
        DSuiteError: unknown split or agreement tier.
    """
    if split not in ("train", "test"):
        raise DSuiteError(f"Financial PhraseBank split must be 'train' or 'test', got {split!r}.")
    if min_agreement not in AGREEMENTS:
        raise DSuiteError(f"min_agreement must be one of {AGREEMENTS}, got {min_agreement!r}.")
    allowed = set(AGREEMENTS[: AGREEMENTS.index(min_agreement) + 1])
    want_test = split == "test"
    return [r for r in load_phrasebank() if r["agreement"] in allowed and (r["id"] % 5 == 0) == want_test]

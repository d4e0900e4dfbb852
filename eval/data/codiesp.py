"""Loader of the shared CodiEsp English cases with ICD-10 diagnosis codes (``medical/codiesp_en``)."""

from __future__ import annotations

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_jsonl

CARD = "codiesp_en"
RELATIVE = "medical/codiesp_en"
SPLITS = ("train", "dev")


def load(split: str = "dev", limit: int | None = None) -> list[dict]:
    """Read one official split.

    Args:
        split: ``train`` or ``dev`` (the test split is held out and not distributed).
        limit: keep only the first ``limit`` cases (None: all).

    Returns:
        Dicts with ``id``, ``text`` (the English text) and ``codes`` (upper-cased diagnosis codes).

    Raises:
        DSuiteError: an unknown split.
    """
    if split not in SPLITS:
        raise DSuiteError(f"CodiEsp split '{split}' is not available; expected one of {', '.join(SPLITS)}.")
    rows = []
    for record in read_jsonl(dataset_dir(RELATIVE) / f"codiesp_en_{split}.jsonl"):
        rows.append(
            {
                "id": record["id"],
                "text": record["text_en"],
                "codes": [code.upper() for code in record["codes_diagnosis"]],
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows

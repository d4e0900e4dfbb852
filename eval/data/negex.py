"""Loader of the shared NegEx/ConText annotated sentences (``medical/negex_context_annotations``)."""

from __future__ import annotations

from eval.data.paths import dataset_dir, read_jsonl

CARD = "negex_context_annotations"
RELATIVE = "medical/negex_context_annotations"
FILE = "negex_context_annotations.jsonl"


def load(limit: int | None = None) -> list[dict]:
    """Read the annotated rows in file order.

    Args:
        limit: keep only the first ``limit`` rows (None: all).

    Returns:
        Dicts with ``id`` (str), ``concept``, ``sentence``, ``negation`` (Affirmed/Negated),
        ``temporality`` (Recent/Historical/Not particular) and ``experiencer``.
    """
    rows = []
    for record in read_jsonl(dataset_dir(RELATIVE) / FILE):
        record = dict(record)
        record["id"] = str(record["id"])
        rows.append(record)
        if limit is not None and len(rows) >= limit:
            break
    return rows

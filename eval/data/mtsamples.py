"""Loader of the shared MTSamples transcriptions (``medical/mtsamples``)."""

from __future__ import annotations

from pathlib import Path

from eval.data.paths import dataset_dir, read_jsonl

CARD = "mtsamples"
RELATIVE = "medical/mtsamples"
FILE = "mtsamples.jsonl"


def path() -> Path:
    """The JSONL file of the 4,999 rows (usable directly as batch-coding input)."""
    return dataset_dir(RELATIVE) / FILE


def load(limit: int | None = None, dedupe: bool = False) -> list[dict]:
    """Read the rows in file order.

    Args:
        limit: keep only the first ``limit`` rows (after de-duplication when asked).
        dedupe: keep only the first row of each distinct non-null transcription (the source lists the
            same note under several specialties).

    Returns:
        Dicts with ``id`` (the ``note_id`` as str), ``text`` (the transcription, possibly None),
        ``specialty``, ``description`` and ``sample_name``.
    """
    rows, seen = [], set()
    for record in read_jsonl(path()):
        text = record.get("transcription")
        if dedupe:
            if text is None or text in seen:
                continue
            seen.add(text)
        rows.append(
            {
                "id": str(record["note_id"]),
                "text": text,
                "specialty": record.get("medical_specialty"),
                "description": record.get("description"),
                "sample_name": record.get("sample_name"),
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    return rows

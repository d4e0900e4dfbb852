"""Bitext customer-support sample (27 intents with reference answers), split deterministically 80/10/10."""

from __future__ import annotations

import csv

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, text_fraction

CARD = "bitext_customer_support"
SPLITS = ("test", "validation", "train")
FILE = "dialog/bitext_customer_support/Bitext_Sample_Customer_Support_Training_Dataset.csv"
ESCALATION_INTENT = "contact_human_agent"


def split_of(text: str) -> str:
    """The split a request belongs to: a hash of its text, so the split is stable and has no leaks."""
    bucket = text_fraction(text)
    return "train" if bucket < 0.8 else ("validation" if bucket < 0.9 else "test")


def load(split: str = "test") -> list[dict]:
    """Examples ``{"id", "text", "label", "category", "entity_type", "entity_value", "response"}``.

    The file has no split column; ``split_of`` assigns one by hashing the request text.
    """
    if split not in SPLITS and split != "all":
        raise DSuiteError(f"Bitext split '{split}' is unknown; expected one of {', '.join(SPLITS)} or 'all'.")
    path = dataset_dir("dialog/bitext_customer_support").parent.parent / FILE
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            text = (row.get("instruction") or "").strip()
            if not text or not row.get("intent"):
                raise DSuiteError(f"{path}: row {number + 2} lacks an instruction or an intent.")
            if split != "all" and split_of(text) != split:
                continue
            rows.append(
                {
                    "id": f"bitext-{number}",
                    "text": text,
                    "label": row["intent"],
                    "category": row.get("category", ""),
                    "entity_type": row.get("entity_type") or None,
                    "entity_value": row.get("entity_value") or None,
                    "response": row.get("response", ""),
                }
            )
    return rows

"""BANKING77 (PolyAI): 77 online-banking intents; train/test CSVs read in place from the shared folder."""

from __future__ import annotations

import csv
from pathlib import Path

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_json, text_fraction

CARD = "banking77"
SPLITS = ("train", "test", "validation")
FOLDER = "dialog/banking77"


def _held_out(text: str, share: float = 0.1) -> bool:
    """Deterministic validation membership (BANKING77 has no official dev split)."""
    return text_fraction(text) < share


def categories() -> list[str]:
    """The 77 intent names, in the data set's order."""
    return list(read_json(dataset_dir(FOLDER) / "categories.json"))


def load(split: str = "test") -> list[dict]:
    """Examples ``{"id", "text", "label"}`` of one split.

    Args:
        split: ``train`` (official train minus a deterministic 10% hold-out), ``validation`` (that
            hold-out) or ``test`` (the official 3,080-query test file).

    Raises:
        DSuiteError: unknown split or malformed file.
    """
    if split not in SPLITS:
        raise DSuiteError(f"BANKING77 split '{split}' is unknown; expected one of {', '.join(SPLITS)}.")
    source = "test" if split == "test" else "train"
    path: Path = dataset_dir(FOLDER) / f"{source}.csv"
    known = set(categories())
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle)):
            text, label = (row.get("text") or "").strip(), row.get("category")
            if label not in known:
                raise DSuiteError(
                    f"{path}: row {number + 2} has category '{label}', not one of categories.json."
                )
            if split != "test" and _held_out(text) != (split == "validation"):
                continue
            rows.append({"id": f"banking77-{source}-{number}", "text": text, "label": label})
    return rows

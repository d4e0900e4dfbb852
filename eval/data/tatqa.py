"""Loader for the TAT-QA test set with gold answers (``finance/tatqa_test``), flattened per question."""

from __future__ import annotations

from functools import lru_cache

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_json

CARD = "tatqa_test"
FOLDER = "finance/tatqa_test"


@lru_cache(maxsize=2)
def load_tatqa() -> tuple[dict, ...]:
    """One record per question: uid, question, answer, answer_type, answer_from, scale, table, paragraphs.

    ``table`` is a list of rows of cell strings; ``paragraphs`` the context texts in order.
    """
    path = dataset_dir(FOLDER) / "tatqa_dataset_test_gold.json"
    data = read_json(path)
    if not isinstance(data, list):
        raise DSuiteError(f"{path}: expected a JSON array of contexts, got {type(data).__name__}.")
    rows = []
    for context in data:
        table = context.get("table", {}).get("table", [])
        ordered = sorted(context.get("paragraphs", []), key=lambda p: p.get("order", 0))
        paragraphs = [p["text"] for p in ordered]
        for question in context.get("questions", []):
            rows.append(
                {
                    "uid": question["uid"],
                    "question": question["question"],
                    "answer": question["answer"],
                    "answer_type": question.get("answer_type", ""),
                    "answer_from": question.get("answer_from", ""),
                    "scale": question.get("scale", ""),
                    "derivation": question.get("derivation", ""),
                    "table": table,
                    "paragraphs": paragraphs,
                }
            )
    return tuple(rows)

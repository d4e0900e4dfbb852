"""Metrics for free-text and numeric answers: exact match, token F1 (SQuAD style), numeric match."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"\(?-?\$?\s*\d[\d,]*(?:\.\d+)?\)?|\(?-?\$?\s*\.\d+\)?")


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD normalisation)."""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _references(reference: str | Sequence[str]) -> list[str]:
    return [reference] if isinstance(reference, str) else [str(r) for r in reference]


def exact_match(prediction: str, reference: str | Sequence[str]) -> float:
    """1.0 when the normalised prediction equals a normalised reference (the best of several), else 0.0."""
    norm = normalize_answer(prediction)
    return float(any(norm == normalize_answer(r) for r in _references(reference)))


def _token_f1_one(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, reference: str | Sequence[str]) -> float:
    """Bag-of-tokens F1 between normalised prediction and reference (the best of several references)."""
    return max(_token_f1_one(prediction, r) for r in _references(reference))


def parse_number(text: str | float | int | None) -> float | None:
    """The first number in ``text``: handles ``1,234.5``, ``$12``, ``(45)`` as -45 and ``12%`` as 12.

    Returns:
        The number, or None when the text holds none.
    """
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    match = _NUMBER.search(str(text))
    if not match:
        return None
    token = match.group(0)
    negative = token.startswith("(") and token.endswith(")") or "-" in token
    digits = re.sub(r"[^\d.]", "", token)
    try:
        value = float(digits)
    except ValueError:
        return None
    return -value if negative else value


def numeric_match(
    prediction: str | float | None,
    reference: str | float,
    rel_tol: float = 0.01,
    abs_tol: float = 1e-6,
) -> float:
    """1.0 when the first number in the prediction is within tolerance of the reference number.

    Args:
        prediction: model output (text or number).
        reference: gold answer (text or number).
        rel_tol: allowed relative difference (0.01 = 1 %).
        abs_tol: allowed absolute difference (for references near 0).

    Returns:
        1.0 or 0.0; 0.0 when either side holds no number.
    """
    pred, gold = parse_number(prediction), parse_number(reference)
    if pred is None or gold is None:
        return 0.0
    return float(math.isclose(pred, gold, rel_tol=rel_tol, abs_tol=abs_tol))

"""Input checks shared by the metric functions."""

from __future__ import annotations

from collections.abc import Sequence

from core_model.errors import DSuiteError


def check_pair(name: str, y_true: Sequence, y_pred: Sequence) -> None:
    """Raise unless both sequences are non-empty and of equal length."""
    if len(y_true) != len(y_pred):
        raise DSuiteError(
            f"{name}: got {len(y_true)} references and {len(y_pred)} predictions; expected one prediction "
            "per reference. Pass lists of equal length."
        )
    if not y_true:
        raise DSuiteError(f"{name}: got empty inputs; expected at least one example to score.")


def safe_div(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0.0 when the denominator is 0 (scikit-learn's zero_division=0)."""
    return numerator / denominator if denominator else 0.0

"""Out-of-scope detection metrics (CLINC150 style): OOS recall and precision, in-scope accuracy."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from eval.metrics._checks import check_pair, safe_div
from eval.metrics.classification import prf


def oos_metrics(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], oos_label: Hashable = "oos"
) -> dict[str, float]:
    """OOS recall/precision/F1 (OOS as the positive class) and accuracy on the in-scope examples.

    Args:
        y_true: reference intents; ``oos_label`` marks out-of-scope requests.
        y_pred: predicted intents (``oos_label`` when the system abstains).
        oos_label: the out-of-scope label.

    Returns:
        ``{"oos_recall", "oos_precision", "oos_f1", "in_scope_accuracy"}``.
    """
    check_pair("oos_metrics", y_true, y_pred)
    pairs = list(zip(y_true, y_pred, strict=True))
    tp = sum(t == oos_label and p == oos_label for t, p in pairs)
    fp = sum(t != oos_label and p == oos_label for t, p in pairs)
    fn = sum(t == oos_label and p != oos_label for t, p in pairs)
    precision, recall, f1 = prf(tp, fp, fn)
    in_scope = [(t, p) for t, p in pairs if t != oos_label]
    return {
        "oos_recall": recall,
        "oos_precision": precision,
        "oos_f1": f1,
        "in_scope_accuracy": safe_div(sum(t == p for t, p in in_scope), len(in_scope)),
    }


def oos_recall(y_true: Sequence[Hashable], y_pred: Sequence[Hashable], oos_label: Hashable = "oos") -> float:
    """Share of out-of-scope requests the system flagged as out of scope."""
    return oos_metrics(y_true, y_pred, oos_label)["oos_recall"]


def oos_precision(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], oos_label: Hashable = "oos"
) -> float:
    """Share of the out-of-scope flags that were really out of scope."""
    return oos_metrics(y_true, y_pred, oos_label)["oos_precision"]

"""Classification metrics: accuracy, per-class precision/recall/F1, macro-F1, confusion counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence

from eval.metrics._checks import check_pair, safe_div


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 from counts (0.0 where a denominator is 0).

    Args:
        tp: true positives.
        fp: false positives.
        fn: false negatives.

    Returns:
        ``(precision, recall, f1)``.
    """
    precision = safe_div(tp, tp + fp)
    recall = safe_div(tp, tp + fn)
    return precision, recall, safe_div(2 * precision * recall, precision + recall)


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Share of predictions equal to their reference.

    Args:
        y_true: reference labels.
        y_pred: predicted labels, one per reference.
    """
    check_pair("accuracy", y_true, y_pred)
    return sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(y_true)


def per_class_prf(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> dict[Hashable, dict[str, float]]:
    """Precision, recall, F1 and support of each class.

    Args:
        y_true: reference labels.
        y_pred: predicted labels, one per reference.
        labels: the classes to report, in order; default: every label seen in either list, sorted.

    Returns:
        ``{label: {"precision", "recall", "f1", "support"}}``.
    """
    check_pair("per_class_prf", y_true, y_pred)
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=str)
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for t, p in zip(y_true, y_pred, strict=True):
        if t == p:
            tp[t] += 1
        else:
            fp[p] += 1
            fn[t] += 1
    out = {}
    for label in labels:
        precision, recall, f1 = prf(tp[label], fp[label], fn[label])
        out[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp[label] + fn[label]}
    return out


def macro_f1(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> float:
    """Unweighted mean of the per-class F1 scores (over ``labels``, default every label seen)."""
    scores = per_class_prf(y_true, y_pred, labels)
    return sum(s["f1"] for s in scores.values()) / len(scores)


def confusion(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> tuple[list[Hashable], list[list[int]]]:
    """Confusion counts: ``matrix[i][j]`` = examples of class ``labels[i]`` predicted as ``labels[j]``.

    Returns:
        ``(labels, matrix)``; predictions outside ``labels`` are not counted.
    """
    check_pair("confusion", y_true, y_pred)
    if labels is None:
        labels = sorted(set(y_true) | set(y_pred), key=str)
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for t, p in zip(y_true, y_pred, strict=True):
        if t in index and p in index:
            matrix[index[t]][index[p]] += 1
    return list(labels), matrix

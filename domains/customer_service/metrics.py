"""Intent metrics with out-of-scope rejection, and the threshold choice on validation."""

from __future__ import annotations

from domains.customer_service.intents import OOS


def _decide(probs, labels: list[str], threshold: float | None):
    """Predicted class index per row, or -1 when rejected as out of scope."""
    import numpy as np

    oos = labels.index(OOS) if OOS in labels else None
    scores = probs.copy()
    winner = scores.argmax(1)
    if oos is not None:
        scores[:, oos] = -1.0
    best = scores.argmax(1)
    conf = scores.max(1)
    rejected = np.zeros(len(best), dtype=bool)
    if oos is not None:
        rejected |= winner == oos
    if threshold is not None:
        rejected |= conf < threshold
    return np.where(rejected, -1, best)


def intent_metrics(probs, y, labels: list[str], threshold: float | None = None) -> dict:
    """Accuracy (all rows when there is no OOS class), in-scope accuracy, OOS recall and precision.

    An in-scope query rejected as out of scope counts as an error. ``in_scope_accuracy_no_reject`` is the
    accuracy of the best in-scope intent without any rejection.
    """
    import numpy as np

    y = np.asarray(y)
    pred = _decide(probs, labels, threshold)
    oos = labels.index(OOS) if OOS in labels else None
    if oos is None:
        return {"accuracy": float((pred == y).mean()), "n": int(len(y))}
    in_scope = y != oos
    no_reject = _decide(probs, labels, None)
    scores = probs.copy()
    scores[:, oos] = -1
    best = scores.argmax(1)
    tp = int(((pred == -1) & ~in_scope).sum())
    flagged = int((pred == -1).sum())
    return {
        "in_scope_accuracy": float((pred[in_scope] == y[in_scope]).mean()),
        "in_scope_accuracy_no_reject": float((best[in_scope] == y[in_scope]).mean()),
        "oos_recall": float(tp / max(1, int((~in_scope).sum()))),
        "oos_precision": float(tp / max(1, flagged)),
        "threshold": threshold,
        "n": int(len(y)),
        "n_oos": int((~in_scope).sum()),
        "_no_reject_check": float((no_reject[in_scope] == y[in_scope]).mean()),
    }


def choose_threshold(probs, y, labels: list[str]) -> float:
    """The confidence threshold maximising in-scope accuracy + OOS recall on a validation split."""
    import numpy as np

    candidates = np.unique(np.round(np.quantile(probs.max(1), np.linspace(0, 0.6, 121)), 4))
    best, best_score = 0.0, -1.0
    for threshold in candidates:
        m = intent_metrics(probs, y, labels, float(threshold))
        score = m["in_scope_accuracy"] + m["oos_recall"]
        if score > best_score:
            best, best_score = float(threshold), score
    return best


def choose_mix(head_probs, lexical_probs, y, labels: list[str]) -> float:
    """The weight of the lexical (TF-IDF) probabilities in the ensemble, by validation accuracy.

    With an OOS class the score is in-scope accuracy + OOS recall at each mix's own best threshold.
    """
    import numpy as np

    best, best_score = 0.0, -1.0
    for mix in np.linspace(0.0, 0.7, 15):
        probs = (1 - mix) * head_probs + mix * lexical_probs
        if OOS in labels:
            m = intent_metrics(probs, y, labels, choose_threshold(probs, y, labels))
            score = m["in_scope_accuracy"] + m["oos_recall"]
        else:
            score = intent_metrics(probs, y, labels)["accuracy"]
        if score > best_score + 1e-9:
            best, best_score = float(mix), score
    return best

"""Intent metrics with out-of-scope rejection, and the choices made on the validation split.

The out-of-scope (OOS) operating point: reject a query when its best in-scope probability is below a
threshold (or when the OOS class itself wins). On validation the threshold is chosen to maximise in-scope
accuracy (a rejected in-scope query counts as an error) among the thresholds whose OOS recall is at least
the target *as a one-sided lower confidence bound* (Wilson): with only 100 validation OOS queries an
observed 0.85 could well be 0.80 on test, so the bound is the margin.
"""

from __future__ import annotations

import math

from domains.customer_service.intents import OOS

OOS_RECALL_TARGET = 0.85
RECALL_Z = 1.645  # one-sided 95% lower bound


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
        "in_scope_rejected": float((pred[in_scope] == -1).mean()),
        "threshold": threshold,
        "n": int(len(y)),
        "n_oos": int((~in_scope).sum()),
    }


def wilson_lower(hits: int, n: int, z: float = RECALL_Z) -> float:
    """One-sided lower confidence bound of a proportion ``hits / n`` (Wilson score interval)."""
    if n <= 0:
        return 0.0
    p = hits / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


def operating_curve(probs, y, labels: list[str]):
    """Every distinct rejection threshold with its in-scope accuracy and OOS hits, in one sorted pass.

    Returns:
        ``(thresholds (K,), in_scope_accuracy (K,), oos_hits (K,), n_oos)``; a row is rejected when its
        best in-scope probability is below the threshold or the OOS class wins. Thresholds lie midway
        between neighbouring probabilities, so a tiny numeric difference at inference changes nothing.
    """
    import numpy as np

    y = np.asarray(y)
    oos = labels.index(OOS)
    winner = probs.argmax(1)
    scores = probs.copy()
    scores[:, oos] = -1.0
    best, conf = scores.argmax(1), scores.max(1)
    forced = winner == oos
    in_scope = y != oos
    values = np.unique(conf)  # thresholds midway between neighbours: robust to rounding at inference
    thresholds = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    # kept-and-correct in-scope rows: conf >= t; rejected OOS rows: forced or conf < t
    good = np.sort(conf[in_scope & ~forced & (best == y)])
    kept_correct = len(good) - np.searchsorted(good, thresholds, side="left")
    loose = np.sort(conf[~in_scope & ~forced])
    caught = int((~in_scope & forced).sum()) + np.searchsorted(loose, thresholds, side="left")
    return thresholds, kept_correct / max(1, int(in_scope.sum())), caught, int((~in_scope).sum())


def choose_threshold(
    probs, y, labels: list[str], min_recall: float = OOS_RECALL_TARGET, z: float = RECALL_Z
) -> float:
    """The rejection threshold with the best validation in-scope accuracy whose OOS recall keeps
    ``min_recall`` as a one-sided lower confidence bound (``z``; 0 = the observed recall itself).

    When no threshold gets there, the one with the highest recall (then in-scope accuracy) is returned.
    """
    import numpy as np

    thresholds, accuracy, caught, n_oos = operating_curve(probs, y, labels)
    bound = np.array([wilson_lower(int(c), n_oos, z) for c in caught])
    feasible = bound >= min_recall
    if feasible.any():
        order = np.lexsort((caught, np.where(feasible, accuracy, -1.0)))  # accuracy first, then recall
    else:
        order = np.lexsort((accuracy, caught))
    return float(thresholds[order[-1]])


def choose_alpha(probs, familiarity, y, labels: list[str], alphas, **kwargs) -> float:
    """The familiarity exponent (``familiarity.rescale``) with the best validation in-scope accuracy at the
    threshold ``choose_threshold`` picks for it, then the best OOS recall; ties keep the smaller exponent."""
    from domains.customer_service.familiarity import rescale

    oos = labels.index(OOS)
    best, best_key = 0.0, None
    for alpha in sorted(alphas):
        _, accuracy, recall = operating_point(rescale(probs, familiarity, alpha, oos), y, labels, **kwargs)
        key = (round(accuracy, 9), round(recall, 9))
        if best_key is None or key > best_key:
            best, best_key = float(alpha), key
    return best


def operating_point(probs, y, labels: list[str], **kwargs) -> tuple[float, float, float]:
    """``(threshold, in-scope accuracy, OOS recall)`` of ``choose_threshold`` on these rows."""
    threshold = choose_threshold(probs, y, labels, **kwargs)
    m = intent_metrics(probs, y, labels, threshold)
    return threshold, m["in_scope_accuracy"], m["oos_recall"]


def weight_grid(members: list[str], step: float = 0.1) -> list[dict[str, float]]:
    """Ensemble weights on the simplex (``step`` apart); the first member always keeps some weight."""
    import itertools

    ticks = round(1 / step)
    grid = []
    for combo in itertools.product(range(ticks + 1), repeat=len(members) - 1):
        rest = ticks - sum(combo)
        if rest >= 1:
            grid.append({m: round(t / ticks, 6) for m, t in zip(members, (rest, *combo), strict=True)})
    return grid


def choose_weights(member_probs: dict, y, labels: list[str], step: float = 0.1, **kwargs) -> dict[str, float]:
    """Ensemble weights (probabilities averaged) with the best validation score.

    Without an OOS class the score is accuracy; with one, in-scope accuracy at the threshold
    ``choose_threshold`` picks for those weights (then OOS recall). Ties keep the earlier grid point
    (more weight on the first member).
    """
    members = list(member_probs)
    best, best_key = None, None
    for weights in weight_grid(members, step):
        probs = sum(w * member_probs[m] for m, w in weights.items() if w > 0)
        if OOS in labels:
            _, accuracy, recall = operating_point(probs, y, labels, **kwargs)
            key = (round(accuracy, 9), round(recall, 9))
        else:
            key = (round(intent_metrics(probs, y, labels)["accuracy"], 9), 0.0)
        if best_key is None or key > best_key:
            best, best_key = weights, key
    return best

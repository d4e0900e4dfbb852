"""Dialog state tracking scores: normalised states, then ``eval.metrics`` joint goal accuracy and slot F1."""

from __future__ import annotations

from domains.customer_service.normalize import normalize_state, normalize_value
from eval.metrics import joint_goal_accuracy, slot_prf


def resolve_gold(gold: dict, pred: dict) -> dict[str, str]:
    """One gold value per slot: SGD lists several acceptable forms; take the one the prediction used."""
    out = {}
    for slot, value in gold.items():
        options = [normalize_value(v) for v in (value if isinstance(value, list) else [value])]
        options = [o for o in options if o]
        if options:
            out[slot] = pred.get(slot) if pred.get(slot) in options else options[0]
    return out


def dst_scores(golds: list[dict], preds: list[dict]) -> dict[str, float]:
    """Joint goal accuracy and micro slot precision/recall/F1 over user turns (values normalised).

    Args:
        golds: gold states per user turn (``{slot: value}`` or ``{slot: [values]}``).
        preds: predicted states per user turn.
    """
    norm_preds = [normalize_state(p) for p in preds]
    norm_golds = [resolve_gold(g, p) for g, p in zip(golds, norm_preds, strict=True)]
    scores = {"joint_goal_accuracy": joint_goal_accuracy(norm_preds, norm_golds)}
    scores.update(slot_prf(norm_preds, norm_golds))
    scores["turns"] = float(len(golds))
    return scores

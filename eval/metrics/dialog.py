"""Dialog state tracking metrics: joint goal accuracy and slot precision/recall/F1.

A dialog state is a ``{slot: value}`` dict for one turn (e.g. ``{"hotel-area": "centre"}``). Values
are compared after lower-casing and stripping; empty values ("", "none") mean the slot is not set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eval.metrics._checks import check_pair
from eval.metrics.classification import prf

_UNSET = {"", "none", "not mentioned"}


def _clean(state: Mapping[str, object]) -> set[tuple[str, str]]:
    pairs = set()
    for slot, value in state.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = " ".join(str(item).lower().split())
            if text not in _UNSET:
                pairs.add((str(slot).lower(), text))
    return pairs


def joint_goal_accuracy(pred_states: Sequence[Mapping], gold_states: Sequence[Mapping]) -> float:
    """Share of turns whose whole predicted state equals the gold state."""
    check_pair("joint_goal_accuracy", gold_states, pred_states)
    hits = sum(_clean(p) == _clean(g) for p, g in zip(pred_states, gold_states, strict=True))
    return hits / len(gold_states)


def slot_prf(pred_states: Sequence[Mapping], gold_states: Sequence[Mapping]) -> dict[str, float]:
    """Micro precision, recall and F1 over (slot, value) pairs of all turns."""
    check_pair("slot_prf", gold_states, pred_states)
    tp = fp = fn = 0
    for pred, gold in zip(pred_states, gold_states, strict=True):
        p, g = _clean(pred), _clean(gold)
        tp += len(p & g)
        fp += len(p - g)
        fn += len(g - p)
    precision, recall, f1 = prf(tp, fp, fn)
    return {"slot_precision": precision, "slot_recall": recall, "slot_f1": f1}


def slot_f1(pred_states: Sequence[Mapping], gold_states: Sequence[Mapping]) -> float:
    """Micro F1 over (slot, value) pairs of all turns."""
    return slot_prf(pred_states, gold_states)["slot_f1"]

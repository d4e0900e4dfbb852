"""Metric functions of the harness, each tested on hand-computed cases.

Import them from here (``from eval.metrics import macro_f1``); the sub-modules group them by kind:
classification, text answers, ranking, dialog state, out-of-scope detection, language modelling and
structured (JSON) output.
"""

from eval.metrics.classification import accuracy, confusion, macro_f1, per_class_prf, prf
from eval.metrics.dialog import joint_goal_accuracy, slot_f1, slot_prf
from eval.metrics.lm import perplexity
from eval.metrics.oos import oos_metrics, oos_precision, oos_recall
from eval.metrics.ranking import average_precision, mean_average_precision, mean_recall_at_k, recall_at_k
from eval.metrics.structured import json_validity, validate_json
from eval.metrics.text import (
    exact_match,
    normalize_answer,
    numeric_match,
    parse_number,
    token_f1,
)

__all__ = [
    "accuracy",
    "average_precision",
    "confusion",
    "exact_match",
    "joint_goal_accuracy",
    "json_validity",
    "macro_f1",
    "mean_average_precision",
    "mean_recall_at_k",
    "normalize_answer",
    "numeric_match",
    "oos_metrics",
    "oos_precision",
    "oos_recall",
    "parse_number",
    "per_class_prf",
    "perplexity",
    "prf",
    "recall_at_k",
    "slot_f1",
    "slot_prf",
    "token_f1",
    "validate_json",
]

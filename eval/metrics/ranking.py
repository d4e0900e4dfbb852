"""Ranking metrics: average precision / MAP and recall@k (e.g. ICD code candidates)."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence

from core_model.errors import DSuiteError
from eval.metrics._checks import check_pair


def average_precision(ranked: Sequence[Hashable], relevant: Collection[Hashable]) -> float:
    """Average precision of one ranking: mean of precision@i over the ranks i of relevant items.

    Relevant items that never appear in the ranking count as 0 (the denominator is ``len(relevant)``);
    duplicates in the ranking count once. An empty relevant set scores 0.0.
    """
    relevant = set(relevant)
    if not relevant:
        return 0.0
    seen: set = set()
    hits = 0
    total = 0.0
    for item in ranked:
        if item in seen:
            continue
        seen.add(item)
        if item in relevant:
            hits += 1
            total += hits / len(seen)
    return total / len(relevant)


def mean_average_precision(
    rankings: Sequence[Sequence[Hashable]], relevants: Sequence[Collection[Hashable]]
) -> float:
    """Mean of :func:`average_precision` over queries."""
    check_pair("mean_average_precision", relevants, rankings)
    return sum(average_precision(r, g) for r, g in zip(rankings, relevants, strict=True)) / len(rankings)


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the relevant items found in the top ``k`` of the ranking (0.0 for an empty relevant set)."""
    if k < 1:
        raise DSuiteError(f"recall_at_k: k must be at least 1, got {k}.")
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant & set(ranked[:k])) / len(relevant)


def mean_recall_at_k(
    rankings: Sequence[Sequence[Hashable]], relevants: Sequence[Collection[Hashable]], k: int
) -> float:
    """Mean of :func:`recall_at_k` over queries."""
    check_pair("mean_recall_at_k", relevants, rankings)
    return sum(recall_at_k(r, g, k) for r, g in zip(rankings, relevants, strict=True)) / len(rankings)

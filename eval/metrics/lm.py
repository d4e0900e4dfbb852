"""Language-model metrics: perplexity from summed negative log-likelihoods."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core_model.errors import DSuiteError


def perplexity(nll_sums: Sequence[float], token_counts: Sequence[int]) -> float:
    """Corpus perplexity ``exp(sum(nll) / sum(tokens))``, token-weighted over documents.

    Args:
        nll_sums: per document, the summed negative log-likelihood (natural log) of its scored tokens.
        token_counts: per document, how many tokens were scored.
    """
    if len(nll_sums) != len(token_counts):
        raise DSuiteError(
            f"perplexity: got {len(nll_sums)} NLL sums and {len(token_counts)} token counts; expected one "
            "count per document."
        )
    total = sum(token_counts)
    if total <= 0:
        raise DSuiteError("perplexity: no scored tokens; expected at least one document with tokens.")
    return math.exp(sum(nll_sums) / total)

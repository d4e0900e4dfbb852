"""Strong negative sentiment from a weighted lexicon (a data file), for escalation decisions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from eval.data.paths import PROJECT_DATA, read_json

SENTIMENT_FILE = PROJECT_DATA / "customer_service" / "sentiment.json"


@dataclass(frozen=True)
class Sentiment:
    """The negativity score of a text and the phrases that produced it."""

    score: float
    strong: bool
    matches: tuple[str, ...]


@lru_cache(maxsize=1)
def _lexicon() -> tuple[dict, dict, float]:
    data = read_json(SENTIMENT_FILE)
    return dict(data["terms"]), dict(data["intensifiers"]), float(data["threshold"])


def negativity(text: str) -> Sentiment:
    """Score ``text``: the sum of matched term weights, plus intensifiers when a term matched."""
    terms, intensifiers, threshold = _lexicon()
    low = f" {re.sub(r'[^a-z]+', ' ', text.lower())} "
    matches = [term for term in terms if f" {term} " in low]
    score = sum(terms[t] for t in matches)
    if matches:
        boost = [w for w in intensifiers if (w in text if w.startswith("!") else f" {w} " in low)]
        score += sum(intensifiers[w] for w in boost)
        matches += boost
        if sum(c.isupper() for c in text) > 12 and text.upper() == text:
            score += 1.0
            matches.append("ALL CAPS")
    return Sentiment(score, score >= threshold, tuple(matches))

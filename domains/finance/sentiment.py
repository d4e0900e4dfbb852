"""Financial sentiment: the prompt the model (base or finance adapter) answers, and a lexicon baseline.

The model is asked to pick one of the labels; the label is chosen by log-likelihood of each option
(``eval.model_io``), which for a 135M model is more reliable than free generation.
"""

from __future__ import annotations

import re
from functools import lru_cache

LABELS = ("negative", "neutral", "positive")
SYSTEM_PROMPT = "You are a finance assistant."
PROMPT = "Sentiment of this financial news for investors (positive, negative or neutral): {sentence}"
LEXICON_FILE = "sentiment_lexicon.json"
LEXICON_SCHEMA = {
    "type": "object",
    "required": ["positive", "negative", "negators"],
    "properties": {
        k: {"type": "array", "items": {"type": "string"}, "minItems": 1}
        for k in ("positive", "negative", "negators")
    },
}


def sentiment_prompt(sentence: str) -> str:
    """The user message for one sentence (the same in training and evaluation)."""
    return PROMPT.format(sentence=sentence.strip())


@lru_cache(maxsize=1)
def _lexicon() -> dict:
    from domains.finance.resources import validated_json

    return validated_json(LEXICON_FILE, LEXICON_SCHEMA)


def lexicon_sentiment(sentence: str) -> str:
    """The lexicon baseline: count positive and negative stems (a negator just before flips one).

    Returns:
        ``positive``, ``negative`` or ``neutral`` (no hits or a tie).
    """
    lexicon = _lexicon()
    words = re.findall(r"[a-z]+", sentence.lower())
    negators = set(lexicon["negators"])
    score = 0
    for index, word in enumerate(words):
        sign = 0
        if any(word.startswith(stem) for stem in lexicon["positive"]):
            sign = 1
        elif any(word.startswith(stem) for stem in lexicon["negative"]):
            sign = -1
        if sign and index and words[index - 1] in negators:
            sign = -sign
        score += sign
    return "positive" if score > 0 else "negative" if score < 0 else "neutral"

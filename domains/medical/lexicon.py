"""A code lexicon learned from coded notes: which words and word pairs signal which ICD-10-CM code.

CodiEsp gives codes per note without the words that justify them; this lexicon recovers them
statistically. For an n-gram ``g`` (1-2 normalised words, stop words skipped) and a code ``c`` seen together
in at least ``min_pair`` training notes, ``score(g, c) = n(g, c) / (n(g) + smoothing)``, the smoothed share of
notes with ``g`` that carry ``c``. A note's score for ``c`` is its best n-gram's score, and that n-gram's
occurrence is the evidence span. Stored as JSON (``data/medical/icd_lexicon.json``).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spacy.lang.en.stop_words import STOP_WORDS

from domains.medical.artifacts import read_json, write_json
from domains.medical.terms import normalize_token

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*|\d+")
_SKIP = STOP_WORDS | {
    "patient",
    "year",
    "old",
    "case",
    "day",
    "month",
    "week",
    "time",
    "study",
    "showed",
    "performed",
    "present",
    "presented",
    "man",
    "woman",
    "male",
    "female",
    "left",
    "right",
}


def ngram_spans(text: str) -> dict[str, list[tuple[int, int]]]:
    """Normalised unigrams and bigrams of ``text`` -> character offsets of every occurrence, in text order."""
    words = [(normalize_token(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]
    found: dict[str, list[tuple[int, int]]] = {}
    for i, (word, start, end) in enumerate(words):
        if word in _SKIP or len(word) < 3:
            continue
        found.setdefault(word, []).append((start, end))
        if i + 1 < len(words) and words[i + 1][0] not in _SKIP and len(words[i + 1][0]) >= 3:
            found.setdefault(f"{word} {words[i + 1][0]}", []).append((start, words[i + 1][2]))
    return found


def ngrams(text: str) -> dict[str, tuple[int, int]]:
    """Normalised unigrams and bigrams of ``text`` -> character offsets of their first occurrence."""
    return {gram: spans[0] for gram, spans in ngram_spans(text).items()}


@dataclass(frozen=True)
class LexiconMatch:
    """The lexicon's view of one code in one note."""

    value: float  # score of the best n-gram
    gram: str  # that n-gram
    offsets: tuple[int, int]  # its first occurrence in the note
    count: int  # n-grams of the note that signal the code
    top2: float  # sum of the two best scores
    noisy_or: float  # 1 - prod(1 - score) over all of them


class Lexicon:
    """n-gram -> {code: score}."""

    def __init__(self, table: dict[str, dict[str, float]]) -> None:
        self.table = table

    @classmethod
    def fit(
        cls,
        notes: Iterable[tuple[str, list[str]]],
        min_pair: int = 2,
        smoothing: float = 2.0,
        min_score: float = 0.1,
    ) -> Lexicon:
        """Learn the lexicon from ``(text, codes)`` pairs.

        Args:
            notes: coded notes.
            min_pair: fewest notes an n-gram and a code must share.
            smoothing: added to ``n(g)`` so rare n-grams do not reach 1.0.
            min_score: pairs scoring lower are dropped.
        """
        gram_count: Counter[str] = Counter()
        pair_count: dict[str, Counter[str]] = defaultdict(Counter)
        for text, codes in notes:
            grams = ngrams(text)
            gram_count.update(grams.keys())
            for gram in grams:
                pair_count[gram].update(set(codes))
        table: dict[str, dict[str, float]] = {}
        for gram, pairs in pair_count.items():
            scores = {
                c: round(n / (gram_count[gram] + smoothing), 4) for c, n in pairs.items() if n >= min_pair
            }
            scores = {c: s for c, s in scores.items() if s >= min_score}
            if scores:
                table[gram] = scores
        return cls(table)

    def score(self, text: str) -> dict[str, tuple[float, str, tuple[int, int]]]:
        """Per code: ``(best score, its n-gram, the n-gram's character offsets in text)``."""
        return {code: (m.value, m.gram, m.offsets) for code, m in self.matches(text).items()}

    def matches(self, text: str) -> dict[str, LexiconMatch]:
        """Per code: its best n-gram in ``text`` and the statistics of all its n-grams there."""
        found: dict[str, list[tuple[float, str, tuple[int, int]]]] = {}
        for gram, offsets in ngrams(text).items():
            for code, value in self.table.get(gram, {}).items():
                found.setdefault(code, []).append((value, gram, offsets))
        out = {}
        for code, hits in found.items():
            best = hits[0]
            for hit in hits[1:]:
                if hit[0] > best[0]:
                    best = hit
            values = sorted(v for v, _, _ in hits)
            missing = 1.0
            for v in values:
                missing *= 1.0 - v
            out[code] = LexiconMatch(best[0], best[1], best[2], len(values), sum(values[-2:]), 1.0 - missing)
        return out

    def save(self, path: Path) -> None:
        """Write the lexicon as JSON (atomically)."""
        write_json(path, {"version": 1, "table": self.table}, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """Read a lexicon written by ``save``."""
        data = read_json(
            path,
            "Lexicon file",
            "a version-1 lexicon file",
            lambda d: d.get("version") == 1 and isinstance(d.get("table"), dict),
        )
        return cls(data["table"])

"""Clinical abbreviations read as the words they stand for, when the full coder scores candidate codes.

"HTN" and "hypertension" name the same condition, but the full coder's features were learned on CodiEsp,
whose notes spell conditions out: retrieval of "HTN" finds nothing close, the code lexicon has no such
n-gram and the ranker scored such mentions below its threshold. ``expand(text)`` writes every listed
abbreviation (``data/medical/abbreviations.json``, whole words, case as written, or its plural in "s") as its
expansion and keeps the offsets, so that n-grams found in the expanded text map back to the note's own words
(the evidence quotes "HTN", not "hypertension"). An abbreviation that follows its own expansion within
``DEFINED_WITHIN`` characters ("deep vein thrombosis (DVT)") is left as it is.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from functools import lru_cache

from domains.medical.resources import MEDICAL_DATA, load_validated

ABBREVIATIONS = MEDICAL_DATA / "abbreviations.json"
DEFINED_WITHIN = 80  # characters before an abbreviation searched for its expansion


@dataclass(frozen=True)
class Expanded:
    """A text with its abbreviations written out, and the way back to the original's offsets.

    ``edits`` holds ``(start in text, end in text, start in original, end in original)`` of each
    replacement, in order.
    """

    original: str
    text: str
    edits: list[tuple[int, int, int, int]] = field(default_factory=list)
    starts: list[int] = field(init=False, repr=False)  # each edit's start in ``text``, for bisect

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", [edit[0] for edit in self.edits])

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """The original offsets of ``text[start:end]``; a range that touches a replacement grows to cover
        the whole abbreviation."""
        return self._position(start, at_end=False), self._position(end, at_end=True)

    def _position(self, pos: int, at_end: bool) -> int:
        i = bisect.bisect_right(self.starts, pos - 1 if at_end else pos) - 1
        if i < 0:
            return pos
        new_start, new_end, old_start, old_end = self.edits[i]
        if pos < new_end or (at_end and pos == new_end):
            return old_end if at_end else old_start
        return old_end + (pos - new_end)


@lru_cache(maxsize=1)
def abbreviations() -> dict[str, str]:
    """The abbreviation table (validated against its schema)."""
    return dict(load_validated(ABBREVIATIONS, MEDICAL_DATA / "abbreviations.schema.json")["abbreviations"])


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern:
    terms = sorted(abbreviations(), key=len, reverse=True)
    # a plural ("UTIs", "TIAs") reads as the condition too
    return re.compile(r"(?<![A-Za-z0-9-])(" + "|".join(map(re.escape, terms)) + r")s?(?![A-Za-z0-9-])")


def expand(text: str) -> Expanded:
    """``text`` with each listed abbreviation replaced by its expansion (see the module docstring)."""
    table = abbreviations()
    pieces: list[str] = []
    edits: list[tuple[int, int, int, int]] = []
    done = length = 0
    for match in _pattern().finditer(text):
        expansion = table[match.group(1)]
        if expansion.lower() in text[max(0, match.start() - DEFINED_WITHIN) : match.start()].lower():
            continue
        pieces.append(text[done : match.start()])
        length += match.start() - done
        edits.append((length, length + len(expansion), match.start(), match.end()))
        pieces.append(expansion)
        length += len(expansion)
        done = match.end()
    if not edits:
        return Expanded(text, text)
    pieces.append(text[done:])
    return Expanded(text, "".join(pieces), edits)


def expand_phrase(text: str) -> str:
    """A short text (a mention, a sentence) with its abbreviations written out."""
    return expand(text).text

"""The number-grounding check: every number in an answer must appear in its sources.

Sources are the cited snapshot figures, the user's own words and the cited definitions. A number in the
answer is grounded when some source number equals it at the answer's precision (``350.6`` is grounded by
``350.58``; ``8%`` by ``8.0%``). Years, percentages, money and plain numbers are all checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NUMBER = re.compile(r"(?<![\w.])[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])[-+]?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class GroundingCheck:
    """Which numbers of an answer are grounded in its sources."""

    numbers: list[str] = field(default_factory=list)
    ungrounded: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every number is grounded (also when there is none)."""
        return not self.ungrounded

    def to_dict(self) -> dict:
        """A JSON-able view."""
        return {"ok": self.ok, "numbers": self.numbers, "ungrounded": self.ungrounded}


def numbers_in(text: str) -> list[str]:
    """The numbers written in ``text`` (digits only; ``1,200.5`` is one number)."""
    return [m.group() for m in NUMBER.finditer(text)]


def _value(number: str) -> float:
    return float(number.replace(",", "").lstrip("+"))


def _decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def is_grounded(number: str, sources: list[float]) -> bool:
    """Whether ``number`` equals a source value rounded to the number's own precision (sign-insensitive)."""
    value = abs(_value(number))
    tolerance = 0.5 * 10 ** -_decimals(number) + 1e-9
    return any(abs(value - abs(s)) <= tolerance for s in sources)


def check_numbers(answer: str, sources: list[str]) -> GroundingCheck:
    """Check every number of ``answer`` against the numbers written in ``sources``."""
    values = [_value(n) for text in sources for n in numbers_in(text)]
    found = numbers_in(answer)
    return GroundingCheck(numbers=found, ungrounded=[n for n in found if not is_grounded(n, values)])


def split_sentences(text: str) -> list[str]:
    """Sentences of a model draft: split after . ! ? followed by space (not inside numbers) and at line
    breaks (a draft of lines without full stops)."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\s*\n\s*", text.strip())
    return [s.strip() for s in parts if s.strip()]


def keep_grounded_sentences(draft: str, sources: list[str]) -> tuple[str, list[str]]:
    """Drop the draft's sentences that contain an ungrounded number, and its repeats of what it has already
    said (the same words, or four or more words of an earlier sentence, e.g. cut short by the token limit: a
    greedy draft of a small model can loop).

    Returns:
        The kept text and the dropped (ungrounded) sentences.
    """
    kept, dropped, said = [], [], []
    for sentence in split_sentences(draft):
        words = " ".join(re.findall(r"\w+", sentence.lower()))
        long = words.count(" ") >= 3
        if any(words == earlier or (long and f" {words} " in f" {earlier} ") for earlier in said):
            continue
        said.append(words)
        (kept if check_numbers(sentence, sources).ok else dropped).append(sentence)
    return " ".join(kept), dropped

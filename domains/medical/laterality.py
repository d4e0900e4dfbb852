"""Laterality: a code of one side whose evidence names only the other side moves to that side's code.

Retrieval finds codes by meaning, and "pain in the right knee" is as close to "Pain in left knee" (M25.562) as
to "Pain in right knee" (M25.561). ICD-10-CM spells a side's sibling the same way with the other word, so the
fix is a lookup: the code whose description is this one's with "left" and "right" swapped (same category).
"""

from __future__ import annotations

import re
from functools import lru_cache

from domains.medical.icd_codes import all_codes, category, describe

SIDES = ("left", "right")
_SIDE = re.compile(r"\b(left|right)\b", re.IGNORECASE)
_BOTH = re.compile(r"\b(bilateral(?:ly)?|both)\b", re.IGNORECASE)


def sides_named(text: str) -> set[str]:
    """The sides a text names: ``left``, ``right``, both for "bilateral" or "both"."""
    found = {m.group(1).lower() for m in _SIDE.finditer(text)}
    return found | set(SIDES) if _BOTH.search(text) else found


def code_side(code: str) -> str | None:
    """``left`` or ``right`` when the code's description names exactly that side (not bilateral)."""
    description = describe(code)
    named = sides_named(description)
    return next(iter(named)) if len(named) == 1 else None


@lru_cache(maxsize=1)
def _by_description() -> dict[str, str]:
    return {describe(code).lower(): code for code in all_codes()}


def _sibling(code: str, side_word) -> str | None:
    """The code of the same category whose description is ``code``'s with each side word replaced."""
    renamed = _SIDE.sub(lambda m: side_word(m.group(1).lower()), describe(code)).lower()
    sibling = _by_description().get(renamed)
    return sibling if sibling and sibling != code and category(sibling) == category(code) else None


def other_side(code: str) -> str | None:
    """The code of the same category whose description is ``code``'s with left and right swapped."""
    return _sibling(code, {"left": "right", "right": "left"}.get)


def unspecified_side(code: str) -> str | None:
    """The same condition with the side unspecified ("Pain in right knee" -> "Pain in unspecified knee"): a
    code that gives way when the side is known."""
    return _sibling(code, lambda _: "unspecified") if code_side(code) else None


def side_of_evidence(code: str, sentences: list[str]) -> str:
    """``code`` itself, or its other-side sibling when the code names one side and its evidence sentences name
    only the other (no sibling: ``code``, unchanged)."""
    side = code_side(code)
    if side is None:
        return code
    named = set().union(*(sides_named(s) for s in sentences)) if sentences else set()
    if len(named) != 1 or side in named:
        return code
    return other_side(code) or code

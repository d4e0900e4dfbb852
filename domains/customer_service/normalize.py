"""Value normalisation for dialog states (synonyms as data, times as HH:MM, number words as digits)."""

from __future__ import annotations

import re
from functools import lru_cache

from eval.data.paths import PROJECT_DATA, read_json

NORMALISATION_FILE = PROJECT_DATA / "customer_service" / "normalisation.json"
_TIME = re.compile(r"^(\d{1,2})(?::|\.)?(\d{2})?\s*(am|pm|a\.m\.|p\.m\.)?$")


@lru_cache(maxsize=1)
def synonyms() -> dict[str, str]:
    """Surface form -> canonical value, from ``data/customer_service/normalisation.json``."""
    data = read_json(NORMALISATION_FILE)
    return {str(k).lower(): str(v).lower() for k, v in data["synonyms"].items()}


def normalize_time(value: str) -> str | None:
    """``7pm`` -> ``19:00``, ``9:5`` stays unparsed (None), ``1730`` -> ``17:30``; None when not a time."""
    match = _TIME.match(value.strip().lower())
    if not match:
        return None
    hour, minute, meridiem = int(match.group(1)), match.group(2), match.group(3)
    if minute is None and meridiem is None:
        return None
    minute_i = int(minute or 0)
    if meridiem and meridiem.startswith("p") and hour < 12:
        hour += 12
    if meridiem and meridiem.startswith("a") and hour == 12:
        hour = 0
    if hour > 23 or minute_i > 59:
        return None
    return f"{hour:02d}:{minute_i:02d}"


def normalize_value(value: str) -> str:
    """The canonical form of a slot value (lower-cased, trimmed, synonyms and times mapped)."""
    text = re.sub(r"\s+", " ", str(value).strip().lower())
    text = re.sub(r"\s+([?.!,'])", r"\1", text).strip(" .,!?")
    if text in synonyms():
        return synonyms()[text]
    as_time = normalize_time(text)
    if as_time:
        return as_time
    if text.startswith("the ") and len(text) > 8:
        text = text[4:]
    return text


def normalize_state(state: dict) -> dict[str, str]:
    """Normalise every value of a ``{slot: value}`` state; list values (SGD) keep their first form."""
    out = {}
    for slot, value in state.items():
        if isinstance(value, list):
            value = value[0] if value else ""
        norm = normalize_value(value)
        if norm and norm not in ("none", "not mentioned"):
            out[slot] = norm
    return out

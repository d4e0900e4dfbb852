"""Refusal policy and disclaimer of the finance advisor (rules in ``data/finance/policy.json``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from core_model.errors import DSuiteError

POLICY_FILE = "policy.json"
_RULES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "patterns", "explanation"],
        "properties": {
            "patterns": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "explanation": {"type": "string", "minLength": 20},
        },
    },
}
POLICY_SCHEMA = {
    "type": "object",
    "required": ["disclaimer", "refusals"],
    "properties": {
        "disclaimer": {"type": "string", "minLength": 20},
        "simulated_note": {"type": "string", "minLength": 20},
        "unknown_symbol_hint": {"type": "string", "minLength": 20},
        "refusals": {**_RULES, "minItems": 1},
        "no_draft": _RULES,
    },
}


@dataclass(frozen=True)
class Refusal:
    """A refused request: which rule, and the explanation given to the user."""

    rule: str
    explanation: str


@lru_cache(maxsize=1)
def load_policy() -> dict:
    """The policy file, schema-checked, with its regexes compiled."""
    from domains.finance.resources import validated_json

    policy = validated_json(POLICY_FILE, POLICY_SCHEMA)
    for key in ("refusals", "no_draft"):
        policy[f"compiled_{key}"] = [
            (r["name"], [re.compile(p, re.IGNORECASE) for p in r["patterns"]], r["explanation"])
            for r in policy.get(key, [])
        ]
    return policy


def disclaimer() -> str:
    """The disclaimer every answer carries."""
    return load_policy()["disclaimer"]


def simulated_note(symbols: list[str]) -> str:
    """What an answer says when ``symbols`` have no market data and their figures come from the simulation."""
    from eval.data.ohlcv import ohlcv_symbols

    try:
        covered = ", ".join(ohlcv_symbols()) or "no symbol"
    except DSuiteError:
        covered = "no symbol (the shared datasets folder is missing)"
    return load_policy()["simulated_note"].format(symbols=", ".join(symbols), covered=covered)


def unknown_symbol_hint(text: str, mentions) -> str | None:
    """How to ask for figures when ``text`` has capitalised words that may be ticker symbols the extractor
    did not read as one ("How is ZZZQ doing?"), or None: 2 to 5 capital letters, not inside a mention."""
    words = [
        m.group(0)
        for m in re.finditer(r"(?<![$\w])[A-Z]{2,5}(?!\w)", text)
        if m.group(0) not in {"OK", "US", "USA", "UK", "EU", "AM", "PM"}
        and not any(x.start <= m.start() < x.end for x in mentions)
    ]
    if not words:
        return None
    words = list(dict.fromkeys(words))  # each once, in order
    example = ", ".join(f"${w}" for w in words)
    return load_policy()["unknown_symbol_hint"].format(words=" or ".join(words), example=example)


def check_request(text: str) -> Refusal | None:
    """The refusal rule ``text`` triggers, or None when the request may be answered."""
    return _first_match(text, "refusals")


def check_no_draft(text: str) -> Refusal | None:
    """The ``no_draft`` rule ``text`` triggers (a recommendation on a named security: the answer gives the
    rule's explanation and the cited figures and terms, and no model draft), or None."""
    return _first_match(text, "no_draft")


def _first_match(text: str, key: str) -> Refusal | None:
    for name, patterns, explanation in load_policy()[f"compiled_{key}"]:
        if any(p.search(text) for p in patterns):
            return Refusal(name, explanation)
    return None

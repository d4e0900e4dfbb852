"""Refusal policy and disclaimer of the finance advisor (rules in ``data/finance/policy.json``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

POLICY_FILE = "policy.json"
POLICY_SCHEMA = {
    "type": "object",
    "required": ["disclaimer", "refusals"],
    "properties": {
        "disclaimer": {"type": "string", "minLength": 20},
        "refusals": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "patterns", "explanation"],
                "properties": {
                    "patterns": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "explanation": {"type": "string", "minLength": 20},
                },
            },
        },
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
    policy["compiled"] = [
        (r["name"], [re.compile(p, re.IGNORECASE) for p in r["patterns"]], r["explanation"])
        for r in policy["refusals"]
    ]
    return policy


def disclaimer() -> str:
    """The disclaimer every answer carries."""
    return load_policy()["disclaimer"]


def check_request(text: str) -> Refusal | None:
    """The refusal rule ``text`` triggers, or None when the request may be answered."""
    for name, patterns, explanation in load_policy()["compiled"]:
        if any(p.search(text) for p in patterns):
            return Refusal(name, explanation)
    return None

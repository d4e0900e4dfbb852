"""The advisor's dialog state (goal, horizon, risk tolerance, amount, instruments), updated each user turn.

The update rules are data (``data/finance/dialog_rules.json``); amounts and instruments come from the term
extractor (MONEY, TICKER and instrument-like dictionary terms).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from domains.finance.extraction import Mention

RULES_FILE = "dialog_rules.json"
_PATTERN_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
RULES_SCHEMA = {
    "type": "object",
    "required": ["goal", "risk_tolerance", "horizon", "horizon_words", "instrument_categories"],
    "properties": {
        "goal": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "patterns"],
                "properties": {"patterns": _PATTERN_LIST},
            },
        },
        "risk_tolerance": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "patterns"],
                "properties": {"value": {"enum": ["low", "medium", "high"]}, "patterns": _PATTERN_LIST},
            },
        },
        "horizon": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["pattern", "unit"],
                "properties": {"unit": {"enum": ["years", "months"]}},
            },
        },
        "horizon_words": {
            "type": "array",
            "items": {"type": "object", "required": ["value_years", "patterns"]},
        },
        "instrument_categories": {"type": "array", "items": {"type": "string"}},
    },
}


@lru_cache(maxsize=1)
def load_dialog_rules() -> dict:
    """The dialog-state rules, schema-checked."""
    from domains.finance.resources import validated_json

    return validated_json(RULES_FILE, RULES_SCHEMA)


def money_value(text: str) -> float | None:
    """The amount of a MONEY mention (``$10,000`` -> 10000.0, ``$1.2 billion`` -> 1.2e9)."""
    match = re.search(r"\d[\d,]*(?:\.\d+)?", text)
    if not match:
        return None
    value = float(match.group().replace(",", ""))
    scale = {
        "thousand": 1e3,
        "k": 1e3,
        "million": 1e6,
        "mn": 1e6,
        "m": 1e6,
        "billion": 1e9,
        "bn": 1e9,
        "b": 1e9,
        "trillion": 1e12,
    }
    suffix = re.search(r"(thousand|million|billion|trillion|mn|bn|[kmb])\s*$", text.lower())
    return value * scale[suffix.group(1)] if suffix else value


@dataclass
class DialogState:
    """What the advisor remembers about the user across turns."""

    goal: str | None = None
    horizon_years: float | None = None
    risk_tolerance: str | None = None
    amount: float | None = None
    amount_text: str | None = None
    instruments: list[str] = field(default_factory=list)
    turns: int = 0

    def update(self, text: str, mentions: list[Mention], instrument_terms: set[str]) -> list[str]:
        """Apply one user turn; return the names of the slots that changed.

        Args:
            text: the user's message.
            mentions: the extractor's mentions in ``text``.
            instrument_terms: dictionary terms that count as instruments (e.g. ``index fund``).
        """
        rules = load_dialog_rules()
        before = asdict(self)
        lowered = text.lower()
        for rule in rules["goal"]:
            if any(re.search(p, lowered) for p in rule["patterns"]):
                self.goal = rule["value"]
                break
        for rule in rules["risk_tolerance"]:
            if any(re.search(p, lowered) for p in rule["patterns"]):
                self.risk_tolerance = rule["value"]
                break
        horizon = None
        for rule in rules["horizon"]:
            match = re.search(rule["pattern"], lowered)
            if match:
                value = float(match.group(1))
                horizon = value if rule["unit"] == "years" else round(value / 12, 2)
                break
        if horizon is None:
            for rule in rules["horizon_words"]:
                if any(re.search(p, lowered) for p in rule["patterns"]):
                    horizon = float(rule["value_years"])
                    break
        if horizon is not None:
            self.horizon_years = horizon
        money = [m for m in mentions if m.label == "MONEY"]
        if money:
            self.amount, self.amount_text = money_value(money[0].text), money[0].text
        for mention in mentions:
            name = None
            if mention.label == "TICKER":
                name = mention.text.lstrip("$").upper()
            elif mention.label == "TERM" and mention.term in instrument_terms:
                name = mention.term
            if name and name not in self.instruments:
                self.instruments.append(name)
        self.turns += 1
        after = asdict(self)
        return [k for k in after if k != "turns" and after[k] != before[k]]

    def tickers(self) -> list[str]:
        """The instruments that look like ticker symbols, most recent first."""
        return [i for i in reversed(self.instruments) if re.fullmatch(r"[A-Z.^]{1,6}", i)]

    def to_dict(self) -> dict:
        """A JSON-able view."""
        return asdict(self)

    def describe(self) -> str:
        """One line for the model's prompt, e.g. ``goal: retirement; horizon: 10 years; ...``."""
        parts = []
        if self.goal:
            parts.append(f"goal: {self.goal}")
        if self.horizon_years is not None:
            parts.append(f"horizon: {self.horizon_years:g} years")
        if self.risk_tolerance:
            parts.append(f"risk tolerance: {self.risk_tolerance}")
        if self.amount_text:
            parts.append(f"amount: {self.amount_text}")
        if self.instruments:
            parts.append(f"instruments: {', '.join(self.instruments)}")
        return "; ".join(parts) or "nothing yet"

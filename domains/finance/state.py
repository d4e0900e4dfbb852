"""The advisor's dialog state (goal, horizon, risk tolerance, amount, instruments), updated each user turn.

The update rules are data (``data/finance/dialog_rules.json``); instruments come from the term extractor
(TICKER and instrument-like dictionary terms), amounts from its MONEY mentions re-read with US or European
separators, plus numbers with a scale word or an amount cue (``5k``, ``2.5 million``, ``10.000 to invest``).
A negated risk level is ruled out, never recorded ("I don't want high risk" records low, the most cautious
level left); a level said of something else ("Is bitcoin high risk?") is not the client's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from domains.finance.extraction import Mention

RULES_FILE = "dialog_rules.json"
_PATTERN_LIST = {"type": "array", "items": {"type": "string"}, "minItems": 1}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_LEVELS = ["low", "medium", "high"]
RULES_SCHEMA = {
    "type": "object",
    "required": [
        "goal",
        "risk_tolerance",
        "negation",
        "risk_caution_order",
        "horizon",
        "horizon_words",
        "amount",
        "instrument_categories",
    ],
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
                "properties": {"value": {"enum": _LEVELS}, "patterns": _PATTERN_LIST},
            },
        },
        "negation": {
            "type": "object",
            "required": ["cues", "exceptions", "window_words", "clause_breaks"],
            "properties": {
                "cues": {"type": "string"},
                "exceptions": _STRINGS,
                "window_words": {"type": "integer", "minimum": 1},
                "clause_breaks": {"type": "string"},
            },
        },
        "risk_caution_order": {
            "type": "array",
            "items": {"enum": _LEVELS},
            "minItems": 3,
            "maxItems": 3,
            "uniqueItems": True,
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
        "amount": {
            "type": "object",
            "required": [
                "currency_before",
                "currency_after",
                "scales",
                "attached_scales",
                "cues_before",
                "cues_after",
                "not_before",
                "not_amounts",
            ],
            "properties": {
                "currency_before": _PATTERN_LIST,
                "currency_after": _PATTERN_LIST,
                "scales": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                },
                "attached_scales": _STRINGS,
                "cues_before": _STRINGS,
                "cues_after": _STRINGS,
                "not_before": {"type": "string"},
                "not_amounts": _STRINGS,
            },
        },
        "instrument_categories": {"type": "array", "items": {"type": "string"}},
    },
}


@lru_cache(maxsize=1)
def load_dialog_rules() -> dict:
    """The dialog-state rules, schema-checked."""
    from domains.finance.resources import validated_json

    return validated_json(RULES_FILE, RULES_SCHEMA)


_GROUP_SPACE = "[ '\u2019\u00a0\u202f]"  # thousands separators in "10 000 €" and "CHF 10'000"


def _grouped(groups: list[str]) -> bool:
    """Whether ``groups`` are digits split at thousands (``["10", "000"]``)."""
    return bool(re.fullmatch(r"[1-9]\d{0,2}", groups[0])) and all(len(g) == 3 for g in groups[1:])


def parse_number(digits: str, scaled: bool = False) -> float | None:
    """A number written with US or European separators; None when it cannot be read without guessing.

    ``10,000.50`` and ``10.000,50`` are both 10000.5; a single separator before exactly 3 digits is a
    thousands separator (``10.000`` and ``10,000`` are 10000) and before 1-2 digits a decimal one (``1,5``
    is 1.5). With a scale word after it (``scaled``), ``1.500`` or ``1,500`` is ambiguous (1.5 or 1500
    million), and so is a comma before 4 or more digits (``1,0000``). A space or apostrophe separates
    thousands only (``10 000,50`` is 10000.5, ``10'000`` is 10000).
    """
    spaced = re.split(_GROUP_SPACE, digits)
    if len(spaced) > 1:
        last = re.fullmatch(r"(\d{3})(?:[.,](\d{1,2}))?", spaced[-1])
        if not last or not _grouped([*spaced[:-1], last.group(1)]):
            return None
        return float("".join(spaced[:-1]) + last.group(1) + "." + (last.group(2) or "0"))
    if "," in digits and "." in digits:
        decimal = "," if digits.rfind(",") > digits.rfind(".") else "."
        whole, fraction = digits.rsplit(decimal, 1)
        groups = whole.split("." if decimal == "," else ",")
        if decimal in whole or not _grouped(groups):
            return None
        return float("".join(groups) + "." + fraction)
    separator = "," if "," in digits else "." if "." in digits else None
    if separator is None:
        return float(digits)
    groups = digits.split(separator)
    if len(groups) > 2:
        return float("".join(groups)) if _grouped(groups) else None
    whole, fraction = groups
    if len(fraction) == 3 and _grouped(groups):
        return None if scaled else float(whole + fraction)
    if len(fraction) <= 2 or separator == ".":
        return float(whole + "." + fraction)
    return None


@lru_cache(maxsize=1)
def _amount_pattern() -> re.Pattern:
    """An amount: optional currency, a number with separators, optional scale word, optional currency."""
    rules = load_dialog_rules()["amount"]
    before = "|".join(rules["currency_before"])
    after = "|".join(rules["currency_after"])
    scales = "|".join(sorted(map(re.escape, rules["scales"]), key=len, reverse=True))
    return re.compile(
        rf"(?<![\w.,])(?P<before>(?:{before}) ?)?(?P<number>\d+(?:{_GROUP_SPACE}\d{{3}}(?!\d))*(?:[.,]\d+)*)"
        rf"(?:(?P<space> ?)(?P<scale>{scales})\b)?(?: ?(?P<after>{after})(?!\w))?",
        re.IGNORECASE,
    )


def _amount_value(match: re.Match) -> float | None:
    scale = match.group("scale")
    value = parse_number(match.group("number"), scaled=bool(scale))
    if value is None or not scale:
        return value
    return value * load_dialog_rules()["amount"]["scales"][scale.lower()]


def money_value(text: str) -> float | None:
    """The amount of a MONEY mention (``$10,000`` -> 10000.0, ``€10.000,50`` -> 10000.5, ``$1.2 billion``
    -> 1.2e9); None when there is none or it is ambiguous (``€1.500 million``)."""
    match = _amount_pattern().search(text)
    return _amount_value(match) if match else None


def _unmarked_amount(match: re.Match, text: str, rules: dict) -> bool:
    """Whether a number the extractor did not mark as MONEY is an amount (see ``read_amounts``)."""
    start, end = match.span()
    if match.group("after"):
        return True
    if re.match(rules["not_before"], text[end:], re.IGNORECASE):
        return False
    scale = (match.group("scale") or "").lower()
    if match.group("before"):
        return True
    if scale:
        return not (match.group("space") and scale in {s.lower() for s in rules["attached_scales"]})
    before = "|".join(rules["cues_before"]) or "(?!)"
    after = "|".join(rules["cues_after"]) or "(?!)"
    return bool(
        re.search(rf"(?:{before})\s+$", text[:start], re.IGNORECASE)
        or re.match(rf"\s+(?:{after})", text[end:], re.IGNORECASE)
    )


def read_amounts(text: str, mentions: list[Mention]) -> list[tuple[str, float | None]]:
    """The amounts in ``text`` in text order, as (words, value); value None when ambiguous.

    Each MONEY mention counts, re-read from ``text`` so that a scale word or separator the extractor left
    out is kept (``€1,5 million``); a number the extractor did not mark counts when it has a currency, a
    scale word (``5k``, ``2.5 million``) or an amount cue (``10.000 to invest``), unless a unit such as
    ``years`` or ``%`` follows it or it overlaps another mention or a ``not_amounts`` pattern (``401k``).
    """
    rules = load_dialog_rules()["amount"]
    money = [(m.start, m.end) for m in mentions if m.label == "MONEY"]
    blocked = [(m.start, m.end) for m in mentions if m.label != "MONEY"]
    blocked += [m.span() for p in rules["not_amounts"] for m in re.finditer(p, text, re.IGNORECASE)]

    def overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
        return any(s < end and start < e for s, e in spans)

    found: list[tuple[int, str, float | None]] = []
    for match in _amount_pattern().finditer(text):
        start, end = match.span()
        if overlaps(blocked, start, end):  # e.g. "In 2024 500 dollars": the year is a DATE
            continue
        if overlaps(money, start, end) or _unmarked_amount(match, text, rules):
            found.append((start, match.group(), _amount_value(match)))
    for start, end in money:  # a MONEY mention the pattern does not cover keeps the extractor's reading
        if not any(s < end and start < s + len(words) for s, words, _ in found):
            words = text[start:end]
            found.append((start, words, money_value(words)))
    return [(words, value) for _, words, value in sorted(found, key=lambda f: f[0])]


def _clause_before(lowered: str, start: int, clause_breaks: str) -> str:
    """The words of the clause before ``start`` (from the last clause break), one space between them."""
    clause = lowered[:start]
    breaks = list(re.finditer(clause_breaks, clause))
    if breaks:
        clause = clause[breaks[-1].end() :]
    return " ".join(clause.split())


def _negated(clause: str, negation: dict) -> bool:
    """Whether the words of ``clause`` before a match end in a negation cue's window (and no double
    negative)."""
    window = " ".join(clause.split()[-negation["window_words"] :])
    if not re.search(negation["cues"], window):
        return False
    return not any(re.search(p, window) for p in negation["exceptions"])


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
        negation = rules["negation"]
        before = asdict(self)
        lowered = text.lower().replace("\u2019", "'")
        for rule in rules["goal"]:
            if any(re.search(p, lowered) for p in rule["patterns"]):
                self.goal = rule["value"]
                break
        self._update_risk(lowered, rules)
        horizon = None
        for rule in rules["horizon"]:
            match = re.search(rule["pattern"], lowered)
            if match:
                value = min(float(g) for g in match.groups() if g is not None)  # a range: its lower bound
                horizon = value if rule["unit"] == "years" else round(value / 12, 2)
                break
        if horizon is None:
            for rule in rules["horizon_words"]:
                if any(
                    not _negated(_clause_before(lowered, m.start(), negation["clause_breaks"]), negation)
                    for p in rule["patterns"]
                    for m in re.finditer(p, lowered)
                ):
                    horizon = float(rule["value_years"])
                    break
        if horizon is not None:
            self.horizon_years = horizon
        amounts = read_amounts(text, mentions)
        if amounts:
            self.amount_text, self.amount = amounts[0]
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

    def _update_risk(self, lowered: str, rules: dict) -> None:
        """Set the risk tolerance from the levels the turn affirms, or else from those it rules out."""
        affirmed, ruled_out = set(), set()
        for rule in rules["risk_tolerance"]:
            for pattern in rule["patterns"]:
                for match in re.finditer(pattern, lowered):
                    clause = _clause_before(lowered, match.start(), rules["negation"]["clause_breaks"])
                    if any(re.search(p, clause) for p in rules["risk_of_something_else"]["patterns"]):
                        continue  # "Is bitcoin high risk?": said of an asset, not of the client
                    negated = _negated(clause, rules["negation"])
                    (ruled_out if negated else affirmed).add(rule["value"])
        for rule in rules["risk_tolerance"]:  # the first affirmed rule wins, as before
            if rule["value"] in affirmed and rule["value"] not in ruled_out:
                self.risk_tolerance = rule["value"]
                return
        if ruled_out and (self.risk_tolerance is None or self.risk_tolerance in ruled_out):
            left = [level for level in rules["risk_caution_order"] if level not in ruled_out]
            self.risk_tolerance = left[0] if left else None

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

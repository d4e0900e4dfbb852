"""The rule tracker's decisions, one candidate at a time, and how far deciding them better could go.

Per user turn the candidates are the slot values the rule tracker read in the customer's words (``rule``)
and the values the assistant's turn offered that the customer may have taken up (``offer``,
:func:`domains.customer_service.offers.offered_values`). The rule baseline keeps every ``rule`` candidate and
no ``offer``; a tracker that decides each candidate (a verifier) keeps some. :func:`decided_states` replays
a dialogue with such decisions, and :func:`ceiling` measures joint goal accuracy when the decisions are the
gold ones: what a perfect verifier of these candidates could reach, the upper bound for that design
(``dsuite cs dst-ceiling``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from domains.customer_service.dst_adapter import gold_state
from domains.customer_service.offers import offered_values
from domains.customer_service.rule_tracker import RuleTracker

KINDS = ("rule", "offer")


@dataclass(frozen=True)
class Candidate:
    """One slot value a turn may set: where it came from and, with a gold state, whether it is right."""

    kind: str
    slot: str
    value: str
    correct: bool | None = None


def read_candidates(tracker: RuleTracker, turn: dict) -> dict[str, dict[str, str]]:
    """Feed one user turn to ``tracker``; its candidates by kind: ``{"rule": {...}, "offer": {...}}``."""
    tracker.update(turn["user"], turn.get("system", ""))
    return {"rule": dict(tracker.last_found), "offer": offered_values(turn.get("system", ""), tracker)}


def as_candidates(found: dict[str, dict[str, str]], gold: dict | None = None) -> list[Candidate]:
    """:func:`read_candidates`' values as candidates, labelled right or wrong when a gold state is given."""
    return [
        Candidate(kind, slot, value, None if gold is None else gold.get(slot) == value)
        for kind in KINDS
        for slot, value in found[kind].items()
    ]


def turn_candidates(turns: list[dict]) -> list[list[Candidate]]:
    """The candidates of each user turn (``{"system", "user"}``, optionally with a gold ``"state"``)."""
    tracker = RuleTracker()
    return [
        as_candidates(read_candidates(tracker, t), gold_state(t) if "state" in t else None) for t in turns
    ]


def decided_states(candidates: list[list[Candidate]], keep: Callable[[Candidate], bool]) -> list[dict]:
    """The state after each turn when only the candidates ``keep`` accepts enter it (offers after rules)."""
    state, out = {}, []
    for turn in candidates:
        for kind in KINDS:
            state.update({c.slot: c.value for c in turn if c.kind == kind and keep(c)})
        out.append(dict(state))
    return out


DECISIONS: dict[str, Callable[[Candidate], bool]] = {
    "rules": lambda c: c.kind == "rule",
    "gold_rule_decisions": lambda c: c.kind == "rule" and bool(c.correct),
    "gold_offer_decisions": lambda c: c.kind == "rule" or bool(c.correct),
    "gold_both": lambda c: bool(c.correct),
}


def ceiling(dialogues: list[list[dict]]) -> dict:
    """Joint goal accuracy over the user turns of ``dialogues`` (with gold states) under each of
    :data:`DECISIONS`: the rules as they are, and gold keep/drop of rule findings, of offers, of both."""
    golds = [gold_state(turn) for turns in dialogues for turn in turns]
    candidates = [turn_candidates(turns) for turns in dialogues]
    figures = {"turns": len(golds)}
    for name, keep in DECISIONS.items():
        states = [state for turns in candidates for state in decided_states(turns, keep)]
        figures[name] = round(sum(s == g for s, g in zip(states, golds, strict=True)) / max(1, len(golds)), 4)
    return figures

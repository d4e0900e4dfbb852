"""MultiWOZ dialog state tracking by the customer-service adapter deciding the rule tracker's candidates.

Per user turn the candidates are the slot values the rule tracker read in the customer's words (``rule``)
and the values the assistant's turn mentioned that the customer may have taken up (``offer``), see
:mod:`domains.customer_service.dst_candidates`. The adapter answers yes or no for each (one forward pass
over the prompt, the first answer token's log-probabilities); a candidate enters the state when
``log p(yes) - log p(no)`` exceeds the threshold of its kind. The prompt and the thresholds are data
(``data/customer_service/dst_verifier.json``); the thresholds are chosen on the validation dialogues
(:func:`choose_thresholds`, ``dsuite cs verifier-thresholds``). With a rule threshold of -inf and an offer
threshold of +inf the tracker is exactly the rule baseline, so the thresholds can only move it where
validation says the adapter's decisions help.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from functools import lru_cache

from core_model.errors import DSuiteError
from domains.customer_service.dst_adapter import ADAPTER_NAME, check_continuation, compact_turn, gold_state
from domains.customer_service.dst_candidates import (
    KINDS,
    Candidate,
    as_candidates,
    decided_states,
    read_candidates,
)
from domains.customer_service.rule_tracker import RuleTracker
from eval.data.paths import PROJECT_DATA, read_json

logger = logging.getLogger(__name__)

SETTINGS_FILE = PROJECT_DATA / "customer_service" / "dst_verifier.json"
BATCH = 32  # prompts per forward pass when scoring


@lru_cache(maxsize=1)
def verifier_settings() -> dict:
    """The verifier's prompt, answers and thresholds (``dst_verifier.json``)."""
    return read_json(SETTINGS_FILE)


def candidate_messages(system: str, user: str, domain: str | None, candidate: Candidate) -> list[dict]:
    """The chat messages of one decision: the turn, the domain in focus and the candidate."""
    settings = verifier_settings()
    slot = candidate.slot.replace("-", " ")
    content = settings["user"].format(
        system=compact_turn(system) or "-",
        user=compact_turn(user),
        domain=domain or "none",
        source=settings["sources"][candidate.kind],
        slot=slot,
        value=candidate.value,
    )
    return [{"role": "system", "content": settings["system"]}, {"role": "user", "content": content}]


def verifier_records(dialogues: list[dict], turns_of) -> list[dict]:
    """Labelled decisions of MultiWOZ dialogues: chat records ending in ``yes`` (the gold state after the
    turn holds the value) or ``no``, every candidate of every user turn.

    Args:
        dialogues: MultiWOZ dialogues (``eval.data.multiwoz.load_dialogues``).
        turns_of: ``eval.data.multiwoz.user_turns``.
    """
    yes, no = verifier_settings()["answers"]
    records = []
    for dialogue in dialogues:
        for candidates, prompts in labelled_decisions(turns_of(dialogue)):
            for candidate, messages in zip(candidates, prompts, strict=True):
                messages.append({"role": "assistant", "content": yes if candidate.correct else no})
                records.append({"messages": messages, "dialogue_id": dialogue["dialogue_id"]})
    return records


def labelled_decisions(turns: list[dict]) -> Iterator[tuple[list[Candidate], list[list[dict]]]]:
    """Per user turn of one dialogue (with its gold ``"state"``): the candidates, labelled right or wrong,
    and the prompt of each."""
    tracker, focus = RuleTracker(), None
    for turn in turns:
        found = read_candidates(tracker, turn)
        focus = tracker.active or focus
        candidates = as_candidates(found, gold_state(turn))
        yield candidates, [candidate_messages(turn["system"], turn["user"], focus, c) for c in candidates]


def score_messages(manager, adapter: str | None, prompts: list[list[dict]]) -> list[float]:
    """``log p(yes) - log p(no)`` of the answer's first token for each prompt (chat messages)."""
    from adapters import GenerationRequest

    answers = verifier_settings()["answers"]
    # prompts of similar length share a batch (less padding); the margins come back in the given order
    order = sorted(range(len(prompts)), key=lambda i: sum(len(m["content"]) for m in prompts[i]))
    margins = [0.0] * len(prompts)
    for start in range(0, len(order), BATCH):
        chunk = order[start : start + BATCH]
        requests = [GenerationRequest(messages=prompts[i], adapter=adapter) for i in chunk]
        rows = manager.first_token_choice(requests, answers)
        if rows is None:
            raise DSuiteError(f"The answers {answers} share their first token; name answers that differ.")
        for i, row in zip(chunk, rows, strict=True):
            margins[i] = row[0] - row[1]
    return margins


class VerifierTracker:
    """Tracks many MultiWOZ dialogues at once, one user turn per step, scoring every candidate of a step in
    batches. Same interface as :class:`~domains.customer_service.dst_adapter.AdapterTracker`.

    Args:
        manager: an :class:`~adapters.AdapterManager`.
        adapter: the adapter that decides (None: the bare base).
        thresholds: ``{"rule": t, "offer": t}`` (default: the chosen ones in ``dst_verifier.json``).
    """

    def __init__(self, manager, adapter: str | None = ADAPTER_NAME, thresholds: dict | None = None):
        self.manager, self.adapter = manager, adapter
        self.thresholds = dict(thresholds or verifier_settings()["thresholds"])
        missing = [k for k in KINDS if k not in self.thresholds]
        if missing:
            raise DSuiteError(f"Verifier thresholds lack {missing}; give one per kind of {list(KINDS)}.")

    def track(self, dialogues: list[list[dict]]) -> list[list[dict]]:
        """States after every user turn for each dialogue (``[{"system", "user"}]`` per dialogue)."""
        from domains.customer_service.dst_adapter import TrackedDialogue

        tracked = [TrackedDialogue() for _ in dialogues]
        self.advance(tracked, dialogues)
        return [t.states for t in tracked]

    def advance(self, tracked: list, dialogues: list[list[dict]]) -> None:
        """Go on tracking each dialogue from where ``tracked[i]`` (a ``TrackedDialogue``) stopped up to the
        end of ``dialogues[i]``; see ``AdapterTracker.advance``. Each decision depends on its own turn only,
        so the states are the same whatever the batching."""
        check_continuation(tracked, dialogues)
        first = min((len(t.turns) for t in tracked), default=0)
        for step in range(first, max((len(d) for d in dialogues), default=0)):
            active = [i for i, d in enumerate(dialogues) if len(tracked[i].turns) == step < len(d)]
            pending: list[tuple[int, Candidate]] = []
            prompts = []
            for i in active:
                turn, done = dialogues[i][step], tracked[i]
                found = read_candidates(done.rules, turn)
                done.domain = done.rules.active or done.domain
                for candidate in as_candidates(found):
                    pending.append((i, candidate))
                    prompts.append(
                        candidate_messages(turn.get("system", ""), turn["user"], done.domain, candidate)
                    )
            margins = score_messages(self.manager, self.adapter, prompts) if prompts else []
            kept: dict[int, list[Candidate]] = {i: [] for i in active}
            for (i, candidate), margin in zip(pending, margins, strict=True):
                if margin > self.thresholds[candidate.kind]:
                    kept[i].append(candidate)
            for i in active:
                done = tracked[i]
                for kind in KINDS:  # offers after rules, as in the ceiling replay
                    done.running = {
                        **done.running,
                        **{c.slot: c.value for c in kept[i] if c.kind == kind},
                    }
                done.record(dialogues[i][step], done.running)


def scored_candidates(manager, adapter: str | None, dialogues: list[list[dict]]) -> list[list[list[tuple]]]:
    """Per dialogue, per user turn: ``(Candidate with its gold label, margin)`` for every candidate.

    ``dialogues``: user turns with their gold ``"state"`` (``multiwoz.user_turns``).
    """
    layout, prompts = [], []
    for turns in dialogues:
        per_turn = []
        for candidates, messages in labelled_decisions(turns):
            per_turn.append(candidates)
            prompts.extend(messages)
        layout.append(per_turn)
    margins = iter(score_messages(manager, adapter, prompts))
    return [[[(c, next(margins)) for c in turn] for turn in turns] for turns in layout]


def joint_goal_accuracy(
    scored: list, golds: list[list[dict]], keep: Callable[[Candidate, float], bool]
) -> float:
    """Joint goal accuracy of the states that ``keep(candidate, margin)`` decisions give."""
    right = total = 0
    for turns, gold in zip(scored, golds, strict=True):
        kept = {id(c) for turn in turns for c, m in turn if keep(c, m)}
        states = decided_states([[c for c, _ in turn] for turn in turns], lambda c, kept=kept: id(c) in kept)
        right += sum(s == g for s, g in zip(states, gold, strict=True))
        total += len(gold)
    return right / max(1, total)


def _grid(values: list[float], open_end: float) -> list[float]:
    """Candidate thresholds: the midpoints between sorted distinct margins (at most ~60), and ``open_end``."""
    distinct = sorted(set(round(v, 3) for v in values))
    step = max(1, len(distinct) // 60)
    picks = distinct[::step]
    return [open_end] + [(a + b) / 2 for a, b in zip(picks, picks[1:], strict=False)]


def choose_thresholds(scored: list, golds: list[list[dict]]) -> dict:
    """The rule and offer thresholds with the best joint goal accuracy on ``scored`` (validation).

    Searched one kind at a time, then the rule threshold again with the chosen offer threshold. Ties keep
    the threshold nearer the rule baseline (rules kept, offers dropped).

    Returns:
        ``{"thresholds": {...}, "jga": chosen, "rules_jga": the baseline's on the same turns}``.
    """
    margins = {k: [m for turns in scored for turn in turns for c, m in turn if c.kind == k] for k in KINDS}
    grids = {"rule": _grid(margins["rule"], -math.inf), "offer": _grid(margins["offer"], math.inf)}

    def jga(t: dict) -> float:
        return joint_goal_accuracy(scored, golds, lambda c, m: m > t[c.kind])

    chosen = {"rule": -math.inf, "offer": math.inf}
    baseline = best = jga(chosen)
    for kind in ("rule", "offer", "rule"):
        for value in grids[kind]:
            trial = {**chosen, kind: value}
            score = jga(trial)
            if score > best + 1e-12:
                best, chosen = score, trial
    return {"thresholds": chosen, "jga": round(best, 4), "rules_jga": round(baseline, 4)}


def write_thresholds(choice: dict, note: str) -> None:
    """Store chosen thresholds in ``dst_verifier.json`` (infinities as +-1000, which no margin reaches)."""
    settings = dict(read_json(SETTINGS_FILE))
    settings["thresholds"] = {
        k: max(-1000.0, min(1000.0, round(v, 3))) for k, v in choice["thresholds"].items()
    }
    settings["thresholds_note"] = note
    SETTINGS_FILE.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    verifier_settings.cache_clear()

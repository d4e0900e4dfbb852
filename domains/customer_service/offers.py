"""Values the assistant offered that the customer takes up, decided by the customer-service adapter.

The rule tracker reads slot values in what the customer says. A value the assistant proposed ("How about
Cotto?") enters the goal only when the customer accepts it ("Sounds great, book a table for 4"), and no
keyword rule tells that well: on MultiWOZ dev, adopting every offered value lowers the rules' joint goal
accuracy from 0.300 to 0.198, adopting only the right ones would raise it to 0.359. So the candidates come
from the rules' value dictionary run over the assistant's turn, and the adapter answers yes or no for each
(``data/customer_service/offer_prompt.json``). Training records come from MultiWOZ dev: a candidate is "yes"
when the gold state after the turn holds that value (``dsuite cs offers-data``).

Status: a first LoRA (r 16 on q/v, 640 balanced records from dev dialogues 0-899, one epoch, 6 minutes)
decided only 60% of the 523 candidates of the held-out dev dialogues 900-998 right (52% are "yes"), so
rules plus its decisions did not beat the rules at any threshold (JGA 0.364 for the rules alone on those
731 turns). With 2,000 records (17 minutes): 66%, still no gain. MiniLM embeddings with a logistic
regression on the same records: 69%. The tracker does not use either yet; the records are the starting
point for a larger run.
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from domains.customer_service.dst_adapter import compact_turn
from domains.customer_service.normalize import normalize_state
from domains.customer_service.rule_tracker import RuleTracker
from domains.customer_service.schema import MULTIWOZ_SLOTS
from eval.data.paths import PROJECT_DATA, read_json

PROMPT_FILE = PROJECT_DATA / "customer_service" / "offer_prompt.json"


@lru_cache(maxsize=1)
def offer_prompt() -> dict:
    """The offer decision's system prompt, user template and answers."""
    return read_json(PROMPT_FILE)


def offered_values(system: str, tracker: RuleTracker) -> dict[str, str]:
    """Slot values the assistant's turn mentions, read with the domain ``tracker`` has in focus.

    Slots the tracker just read from the customer's own turn are left out: the customer's words win.
    """
    if not system.strip():
        return {}
    probe = RuleTracker()
    probe.active = tracker.active
    found = normalize_state(probe.update(system, ""))
    return {s: v for s, v in found.items() if s in MULTIWOZ_SLOTS and s not in tracker.last_found}


def offer_messages(system: str, user: str, slot: str, value: str) -> list[dict]:
    """The chat messages of one offer decision (the answer is ``yes`` or ``no``)."""
    prompt = offer_prompt()
    content = prompt["user"].format(
        system=compact_turn(system), user=compact_turn(user), slot=slot.replace("-", " "), value=value
    )
    return [{"role": "system", "content": prompt["system"]}, {"role": "user", "content": content}]


def offer_records(dialogues: list[dict], turns_of, limit: int | None = None, seed: int = 0) -> list[dict]:
    """Labelled offer decisions from MultiWOZ dialogues (chat records ending in the yes/no answer).

    Args:
        dialogues: MultiWOZ dialogues (``eval.data.multiwoz.load_dialogues``).
        turns_of: ``eval.data.multiwoz.user_turns``.
        limit: keep this many records, half yes and half no where both have enough (None: all).
        seed: sampling seed.
    """
    yes, no = [], []
    for dialogue in dialogues:
        tracker = RuleTracker()
        for turn in turns_of(dialogue):
            tracker.update(turn["user"], turn["system"])
            gold = normalize_state(turn["state"])
            for slot, value in offered_values(turn["system"], tracker).items():
                accepted = gold.get(slot) == value
                messages = offer_messages(turn["system"], turn["user"], slot, value)
                messages.append({"role": "assistant", "content": "yes" if accepted else "no"})
                record = {"messages": messages, "dialogue_id": dialogue["dialogue_id"]}
                (yes if accepted else no).append(record)
    if limit is None:
        return yes + no
    rng = random.Random(seed)
    half = limit // 2
    take_yes = min(len(yes), max(half, limit - len(no)))
    picked = rng.sample(yes, take_yes) + rng.sample(no, min(len(no), limit - take_yes))
    rng.shuffle(picked)
    return picked


def write_offer_records(
    out_path: str | Path, dialogues: list[dict], turns_of, limit: int | None = None
) -> Path:
    """``offer_records`` as a JSONL training file."""
    from adapters.data import write_jsonl

    return Path(write_jsonl(out_path, offer_records(dialogues, turns_of, limit)))

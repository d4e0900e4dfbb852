"""Dialog state tracking with the customer-service LoRA adapter on the base model.

After each user turn the adapter writes the slots that turn sets (a JSON object); the tracker merges it into
the running state, normalises the values and keeps only what the schema accepts, so the full state after
every turn is a schema-valid JSON object. The prompt (``data/customer_service/dst_prompt.json``) gives the
domain in focus, the slots the rule tracker found in the turn, the last system turn and the user turn (a
template may also show the state so far, ``{state}``). Training records come from MultiWOZ dev (the train
split is not in the shared copy); every ``validation_every``-th dev dialogue is kept out of training for
validation.
"""

from __future__ import annotations

import json
import logging
import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core_model.errors import DSuiteError
from domains.customer_service.normalize import normalize_state
from domains.customer_service.rule_tracker import RuleTracker
from domains.customer_service.schema import MULTIWOZ_SLOTS, load_schema
from eval.data.paths import PROJECT_DATA, read_json

logger = logging.getLogger(__name__)

PROMPT_FILE = PROJECT_DATA / "customer_service" / "dst_prompt.json"
ADAPTER_NAME = "customer_service"
_JSON = re.compile(r"\{.*?\}", re.S)


@lru_cache(maxsize=1)
def prompt_template() -> dict:
    """The tracker's system prompt and user template."""
    return read_json(PROMPT_FILE)


def compact_turn(text: str) -> str:
    """A MultiWOZ utterance with its tokenizer spaces before punctuation removed."""
    return re.sub(r"\s+([?.!,'])", r"\1", text).strip()


def domain_slots(schema: str, domain: str | None) -> str:
    """The slot names (without the domain prefix) of ``domain`` in ``schema``, comma-separated."""
    if not domain:
        return "-"
    names = [s.split("-", 1)[1] for s in load_schema(schema).slots if s.split("-", 1)[0] == domain]
    return ", ".join(names) or "-"


def validation_dialogues(dialogue_ids) -> set[str]:
    """The dev dialogues kept out of the adapter's training: every ``validation_every``-th by sorted id."""
    every = int(prompt_template()["validation_every"])
    return set(sorted(dialogue_ids)[::every])


def split_dialogues(split: str) -> list[dict]:
    """MultiWOZ dialogues of ``test``, ``dev``, or ``validation`` (the dev dialogues kept out of training)."""
    from eval.data import multiwoz

    if split not in ("validation", "dev", "test"):
        raise DSuiteError(f"Unknown MultiWOZ split '{split}'; use validation, dev or test.")
    dialogues = multiwoz.load_dialogues("dev" if split == "validation" else split)
    if split == "validation":
        kept = validation_dialogues(d["dialogue_id"] for d in dialogues)
        dialogues = [d for d in dialogues if d["dialogue_id"] in kept]
    return dialogues


def gold_state(turn: dict) -> dict:
    """A turn's gold state, normalised, on the 30 informable MultiWOZ slots."""
    return {k: v for k, v in normalize_state(turn["state"]).items() if k in MULTIWOZ_SLOTS}


def turn_messages(
    system: str,
    user: str,
    domain: str | None,
    rules: dict,
    schema: str = "multiwoz",
    state: dict | None = None,
) -> list[dict]:
    """The chat messages the adapter sees for one user turn (``state``: the full state before it)."""
    template = prompt_template()
    content = template["user"].format(
        domain=domain or "none",
        slots=domain_slots(schema, domain),
        state=json.dumps(state or {}, ensure_ascii=False),
        rules=json.dumps(rules, ensure_ascii=False),
        system=compact_turn(system) or "-",
        user=compact_turn(user),
    )
    return [{"role": "system", "content": template["system"]}, {"role": "user", "content": content}]


def parse_delta(text: str) -> dict[str, str]:
    """The first JSON object in the model's answer, as ``{slot: value}`` strings ({} when none parses)."""
    match = _JSON.search(text)
    if not match:
        return {}
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, (str, int, float)) and str(v).strip()}


def _domain_of(delta: dict, fallback: str | None) -> str | None:
    return next(iter(delta)).split("-", 1)[0] if delta else fallback


def gold_delta(previous: dict, current: dict) -> dict:
    """Slots whose value is new or changed between two gold states."""
    return {k: v for k, v in current.items() if previous.get(k) != v}


def training_dialogues() -> list[dict]:
    """The MultiWOZ dev dialogues the adapter trains on: all but the validation ones."""
    from eval.data import multiwoz

    dialogues = multiwoz.load_dialogues("dev")
    held_out = validation_dialogues(d["dialogue_id"] for d in dialogues)
    return [d for d in dialogues if d["dialogue_id"] not in held_out]


def generator_records(dialogues: list[dict], limit: int | None = 800, seed: int = 0) -> list[dict]:
    """The user turns of ``dialogues`` as chat records (prompt -> the turn's gold state update).

    A template that shows ``{state}`` gets the gold state before the turn (at inference: the tracked one).

    Args:
        dialogues: MultiWOZ dialogues (:func:`training_dialogues`).
        limit: keep this many user turns, sampled evenly at random over the dialogues (None: all).
        seed: sampling seed.
    """
    from eval.data import multiwoz

    records = []
    rng = random.Random(seed)
    dropout = float(prompt_template().get("hint_dropout", 0.0))
    for dialogue in dialogues:
        rules, previous, focus = RuleTracker(), {}, None
        for turn in multiwoz.user_turns(dialogue):
            rules.update(turn["user"], turn["system"])
            focus = rules.active or focus  # as at inference: the rules' domain, else the last update's
            gold = gold_state(turn)
            delta = gold_delta(previous, gold)
            hint = {} if rng.random() < dropout else rules.last_found
            messages = turn_messages(turn["system"], turn["user"], focus, hint, state=previous)
            messages.append({"role": "assistant", "content": json.dumps(delta, ensure_ascii=False)})
            records.append({"messages": messages, "dialogue_id": dialogue["dialogue_id"]})
            previous, focus = gold, _domain_of(delta, focus)
    if limit is not None and limit < len(records):
        records = random.Random(seed).sample(records, limit)
    return records


def build_training_set(out_path: str | Path, limit: int | None = 800, seed: int = 0) -> Path:
    """Write :func:`generator_records` of the training dialogues (the validation ones left out) as JSONL."""
    from adapters.data import write_jsonl

    records = generator_records(training_dialogues(), limit, seed)
    out = write_jsonl(out_path, records)
    logger.info("wrote %d DST training records to %s", len(records), out)
    return Path(out)


@dataclass
class TrackedDialogue:
    """How far one dialogue has been tracked, so tracking can go on from there (one user turn at a time).

    Attributes:
        turns: the user turns consumed so far (``{"system", "user"}``).
        states: the full state after each of them.
        running: the state after the last one.
        domain: the domain in focus (SGD: its fixed service).
        rules: the rule tracker whose per-turn findings feed the prompt (MultiWOZ).
    """

    turns: list[dict] = field(default_factory=list)
    states: list[dict] = field(default_factory=list)
    running: dict = field(default_factory=dict)
    domain: str | None = None
    rules: RuleTracker = field(default_factory=RuleTracker)

    def agrees_with(self, turns: list[dict]) -> bool:
        """Whether ``turns`` and the turns tracked so far are the same where both have one.

        Then tracking ``turns`` can go on from here, or has already passed them.
        """
        return all(done == _turn_text(turn) for done, turn in zip(self.turns, turns, strict=False))

    def record(self, turn: dict, state: dict) -> None:
        """Note one more consumed user turn and the full state after it."""
        self.turns.append(_turn_text(turn))
        self.states.append(dict(state))


def _turn_text(turn: dict) -> dict:
    return {"system": turn.get("system", ""), "user": turn["user"]}


def check_continuation(tracked: list[TrackedDialogue], dialogues: list[list[dict]]) -> None:
    """Refuse to go on tracking a dialogue that does not start with the turns already tracked."""
    for i, (done, turns) in enumerate(zip(tracked, dialogues, strict=True)):
        if not done.agrees_with(turns):
            raise DSuiteError(
                f"Dialogue {i} does not start with the {len(done.turns)} user turns already tracked; "
                "pass the dialogue from its first turn (or start from a fresh TrackedDialogue)."
            )


class AdapterTracker:
    """Tracks many dialogues at once, one user turn per step, batching the adapter's generations."""

    def __init__(
        self, manager, adapter: str | None = ADAPTER_NAME, schema: str = "multiwoz", max_new_tokens: int = 48
    ):
        self.manager, self.adapter, self.max_new_tokens = manager, adapter, max_new_tokens
        self.schema_name = schema
        self.schema = load_schema(schema)

    def track(self, dialogues: list[list[dict]], services: list[str] | None = None) -> list[list[dict]]:
        """States after every user turn for each dialogue (``[{"system", "user"}]`` per dialogue).

        Args:
            dialogues: user turns with the system turn before each.
            services: a fixed domain per dialogue (SGD: its one service); None lets the rules find it.
        """
        tracked = [TrackedDialogue(domain=services[i] if services else None) for i in range(len(dialogues))]
        self.advance(tracked, dialogues)
        return [t.states for t in tracked]

    def advance(self, tracked: list[TrackedDialogue], dialogues: list[list[dict]]) -> None:
        """Go on tracking each dialogue from where ``tracked[i]`` stopped up to the end of ``dialogues[i]``.

        ``dialogues[i]`` must start with the turns ``tracked[i]`` has already consumed (a dialogue tracked
        that far already is left as it is); the states after the new turns are appended to
        ``tracked[i].states``. Dialogues at the same step share one batch of generations (greedy rows are
        independent of their batch), so a dialogue continued later gets the states of tracking it in one go.
        """
        from adapters import GenerationRequest

        check_continuation(tracked, dialogues)
        use_rules = self.schema_name == "multiwoz"
        first = min((len(t.turns) for t in tracked), default=0)
        for step in range(first, max((len(d) for d in dialogues), default=0)):
            active = [i for i, d in enumerate(dialogues) if len(tracked[i].turns) == step < len(d)]
            if not active:
                continue
            requests = []
            for i in active:
                turn, done = dialogues[i][step], tracked[i]
                if use_rules:
                    done.rules.update(turn["user"], turn.get("system", ""))
                    done.domain = done.rules.active or done.domain
                messages = turn_messages(
                    turn.get("system", ""),
                    turn["user"],
                    done.domain,
                    done.rules.last_found,
                    self.schema_name,
                    state=done.running,
                )
                requests.append(
                    GenerationRequest(
                        messages=messages, adapter=self.adapter, max_new_tokens=self.max_new_tokens
                    )
                )
            results = self.manager.generate(requests)
            for i, result in zip(active, results, strict=True):
                done = tracked[i]
                delta = self.schema.clean(normalize_state(parse_delta(result.text)))
                done.running = {**done.running, **delta}
                if use_rules:
                    done.domain = _domain_of(delta, done.domain)
                done.record(dialogues[i][step], done.running)

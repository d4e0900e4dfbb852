"""``finance.grounding``: scripted multi-turn conversations through the advisor.

Each example is one conversation (``data/finance/conversations.jsonl``) run turn by turn in a fresh
``FinanceAdvisor``. Metrics over answers: ``disclaimer_rate`` (disclaimer present), ``grounded_rate``
(every number of the final answer grounded), ``draft_grounded_rate`` (every number of the model's raw
draft grounded, before the filter drops ungrounded sentences), ``state_accuracy`` (expected state slots
held after the turn: carried across turns), ``refusal_accuracy`` (refused exactly when expected).
Systems: the base or an adapter drafts; baseline ``extractive`` answers without a model.
"""

from __future__ import annotations

from domains.finance.resources import FINANCE_DATA
from eval.registry import SystemSpec, Task

CONVERSATIONS = "conversations.jsonl"
SCHEMA = "conversations.schema.json"


def load(split: str) -> list[dict]:  # noqa: ARG001 - one split
    """The scripted conversations."""
    from domains.finance.resources import validated_jsonl

    return validated_jsonl(CONVERSATIONS, SCHEMA)


def _state_matches(state: dict, expected: dict) -> tuple[int, int]:
    hits = 0
    for slot, value in expected.items():
        if slot == "instruments":
            hits += all(v in state["instruments"] for v in value)
        else:
            hits += state.get(slot) == value
    return hits, len(expected)


def _record(answer, turn: dict) -> dict:
    """What the metrics need from one answer."""
    hits, slots = _state_matches(answer.state, turn["expect_state"])
    return {
        "answer": answer.text,
        "answered_by": answer.answered_by,
        "disclaimer": answer.disclaimer in answer.text,
        "grounded": answer.grounding.ok,
        "draft_grounded": answer.draft_grounding.ok,
        "ungrounded": answer.draft_grounding.ungrounded,
        "refused": answer.refused,
        "refusal_ok": answer.refused == turn["expect_refusal"],
        "state_hits": hits,
        "state_slots": slots,
        "state": answer.state,
    }


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    """Run the conversations in lockstep; record per turn what the metrics need.

    Each conversation has its own advisor; turn k of every conversation that has one is asked together
    (``ask_many``), so the model drafts those turns in one batch instead of one prompt at a time.
    """
    from domains.finance.advisor import FinanceAdvisor, ask_many

    if system.baseline == "extractive":
        advisors = [FinanceAdvisor(mode="extractive") for _ in examples]
    else:
        advisors = [FinanceAdvisor(mode="model", adapter=system.adapter, base=system.base) for _ in examples]
    outputs: list[dict] = [{"turns": []} for _ in examples]
    for k in range(max((len(e["turns"]) for e in examples), default=0)):
        live = [i for i, example in enumerate(examples) if k < len(example["turns"])]
        answers = ask_many([advisors[i] for i in live], [examples[i]["turns"][k]["user"] for i in live])
        for i, answer in zip(live, answers, strict=True):
            outputs[i]["turns"].append(_record(answer, examples[i]["turns"][k]))
    return outputs


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:  # noqa: ARG001
    """Rates over all answers (state accuracy over all expected slots)."""
    turns = [t for o in outputs for t in o["turns"]]
    n = len(turns)
    slots = sum(t["state_slots"] for t in turns)
    return {
        "disclaimer_rate": sum(t["disclaimer"] for t in turns) / n,
        "grounded_rate": sum(t["grounded"] for t in turns) / n,
        "draft_grounded_rate": sum(t["draft_grounded"] for t in turns) / n,
        "state_accuracy": sum(t["state_hits"] for t in turns) / slots if slots else 1.0,
        "refusal_accuracy": sum(t["refusal_ok"] for t in turns) / n,
        "answers": float(n),
    }


def build_task() -> Task:
    """The task object."""
    return Task(
        depends_on=(FINANCE_DATA,),
        name="finance.grounding",
        dataset="finance_conversations",
        description="Scripted advisory conversations: disclaimer, number grounding, state, refusals",
        load=load,
        predict=predict,
        score=score,
        primary_metric="grounded_rate",
        baselines=("extractive",),
        batch_size=12,  # conversations per predict call: drafted in lockstep, turn k of all in one batch
    )

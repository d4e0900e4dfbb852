"""The state-tracking tasks score user turns: turn-level predictions equal tracking whole dialogues.

One example is one user turn (``"<dialogue_id>#<turn>"``); predicting it tracks its dialogue from the first
turn, remembering how far each dialogue got so a dialogue split across batches goes on where it stopped.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from core_model.errors import DSuiteError
from domains.customer_service import tasks as cs_tasks
from domains.customer_service.dst_adapter import AdapterTracker, TrackedDialogue
from domains.customer_service.dst_metrics import dst_scores
from domains.customer_service.rule_tracker import track_dialogue
from domains.customer_service.schema import MULTIWOZ_SLOTS
from eval.data import multiwoz
from eval.registry import SystemSpec
from eval.runner import run
from eval.samples import SAMPLES_FILE, read_samples

RULES = SystemSpec(baseline="rules")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Each test starts as a fresh process would: nothing tracked yet."""
    cs_tasks.clear_dst_memo()
    yield
    cs_tasks.clear_dst_memo()


def _whole_dialogue_states(n_dialogues: int) -> tuple[dict[str, dict], dict[str, dict]]:
    """The rule tracker over whole MultiWOZ test dialogues: predicted and gold state per turn id."""
    predicted, gold = {}, {}
    for dialogue in multiwoz.load_dialogues("test", limit=n_dialogues):
        turns = multiwoz.user_turns(dialogue)
        for index, (turn, state) in enumerate(zip(turns, track_dialogue(turns), strict=True)):
            key = f"{dialogue['dialogue_id']}#{index}"
            predicted[key] = state
            gold[key] = {k: v for k, v in turn["state"].items() if k in MULTIWOZ_SLOTS}
    return predicted, gold


def _first_dialogues(examples: list[dict], n: int) -> list[dict]:
    wanted = list(dict.fromkeys(e["dialogue_id"] for e in examples))[:n]
    return [e for e in examples if e["dialogue_id"] in wanted]


def test_examples_are_user_turns_carrying_their_dialogue():
    examples = cs_tasks.multiwoz_task().load("test")
    dialogue = multiwoz.load_dialogues("test", limit=1)[0]
    turns = multiwoz.user_turns(dialogue)
    first = examples[: len(turns)]
    assert [e["id"] for e in first] == [f"{dialogue['dialogue_id']}#{i}" for i in range(len(turns))]
    assert examples[len(turns)]["dialogue_id"] != dialogue["dialogue_id"]
    for index, (example, turn) in enumerate(zip(first, turns, strict=True)):
        assert example["dialogue_id"] == dialogue["dialogue_id"] and example["turn"] == index
        assert (example["system"], example["user"]) == (turn["system"], turn["user"])
        assert example["context"] == [{"system": t["system"], "user": t["user"]} for t in turns[:index]]
        assert set(example["state"]) <= set(MULTIWOZ_SLOTS)
    assert len(examples) == len({e["id"] for e in examples})

    sgd_examples = cs_tasks.sgd_task().load("test")
    assert sgd_examples[0]["id"].endswith("#0") and sgd_examples[0]["service"] in (
        "Payment_1",
        "RentalCars_3",
    )
    assert all(e["turn"] == len(e["context"]) for e in sgd_examples)


def test_turn_level_rules_equal_tracking_whole_dialogues():
    expected, gold = _whole_dialogue_states(5)
    task = cs_tasks.multiwoz_task()
    examples = _first_dialogues(task.load("test"), 5)
    assert len(examples) == len(expected) and len(examples) > 20

    # batches of 7 turns cut dialogues in the middle; the memo lets each go on where it stopped
    outputs = []
    for start in range(0, len(examples), 7):
        outputs += task.predict(examples[start : start + 7], RULES)
    for example, output in zip(examples, outputs, strict=True):
        assert output["predicted"] == expected[example["id"]], example["id"]
        assert output["gold"] == gold[example["id"]] and output["user"] == example["user"]

    # a fresh process resuming with only later turns (any order) tracks them from each dialogue's start
    cs_tasks.clear_dst_memo()
    later = [e for e in examples if e["turn"] >= 2][::-1]
    for example, output in zip(later, task.predict(later, RULES), strict=True):
        assert output["predicted"] == expected[example["id"]], example["id"]

    # the scores over turns are the dialogue-level scores
    assert task.score(examples, outputs) == dst_scores(
        [gold[e["id"]] for e in examples], [expected[e["id"]] for e in examples]
    )


def test_sgd_turns_go_through_the_same_path():
    task = cs_tasks.sgd_task()
    examples = _first_dialogues(task.load("test"), 3)
    by_dialogue: dict[str, list[dict]] = {}
    for example in examples:
        by_dialogue.setdefault(example["dialogue_id"], []).append(example)
    outputs = task.predict(examples[:5], RULES) + task.predict(examples[5:], RULES)
    for example, output in zip(examples, outputs, strict=True):
        turns = by_dialogue[example["dialogue_id"]]
        assert output["predicted"] == track_dialogue(turns)[example["turn"]]


def test_a_limit_that_cuts_a_dialogue_works_and_resumes(tmp_path):
    expected, gold = _whole_dialogue_states(4)
    task = dataclasses.replace(cs_tasks.multiwoz_task(), batch_size=3)
    all_examples = task.load("test")
    first, second = list(dict.fromkeys(e["dialogue_id"] for e in all_examples))[:2]
    n_first = sum(1 for e in all_examples if e["dialogue_id"] == first)
    n_second = sum(1 for e in all_examples if e["dialogue_id"] == second)
    limit = n_first + n_second // 2 + 1  # ends inside the second dialogue
    assert all_examples[limit]["dialogue_id"] == all_examples[limit - 1]["dialogue_id"]

    report = run(task, RULES, limit=limit, out_dir=tmp_path / "run", progress=False)
    ids = [e["id"] for e in all_examples[:limit]]
    assert report.n_examples == limit
    assert report.rows[0].metrics == dst_scores([gold[i] for i in ids], [expected[i] for i in ids])
    assert (tmp_path / "run" / "report.md").is_file()
    assert (tmp_path / "run" / "metrics.png").read_bytes()[:8] == PNG_MAGIC
    lines = [json.loads(line) for line in (tmp_path / "run" / SAMPLES_FILE).read_text().splitlines()]
    assert [line["id"] for line in lines] == ids
    assert set(lines[-1]["output"]) == {"user", "gold", "predicted"}

    # interrupted inside a dialogue: keep the first 4 samples, drop the report; a fresh process resumes
    folder = tmp_path / "resumed"
    folder.mkdir()
    (folder / SAMPLES_FILE).write_text("\n".join(json.dumps(line) for line in lines[:4]) + "\n")
    (folder / "run.json").write_text((tmp_path / "run" / "run.json").read_text())
    cs_tasks.clear_dst_memo()
    resumed = run(task, RULES, limit=limit, out_dir=folder, progress=False, plots=False)
    assert resumed.rows[0].metrics == report.rows[0].metrics
    assert read_samples(folder)["baseline:rules"] == read_samples(tmp_path / "run")["baseline:rules"]


def test_predict_refuses_an_example_without_its_earlier_turns():
    example = dict(cs_tasks.multiwoz_task().load("test")[2], context=[])
    with pytest.raises(DSuiteError, match="earlier turns"):
        cs_tasks.dst_predictions([example], RULES)


@pytest.mark.slow
def test_adapter_tracker_goes_on_where_it_stopped(embedded_base):
    """The model path: tracking in two parts (batched with another dialogue) equals tracking in one go."""
    from adapters import AdapterManager, Registry

    manager = AdapterManager(embedded_base, Registry())
    tracker = AdapterTracker(manager, adapter=None, max_new_tokens=8)
    first, second = (multiwoz.user_turns(d) for d in multiwoz.load_dialogues("test", limit=2))
    whole = tracker.track([first[:3]])[0]

    tracked, other = TrackedDialogue(), TrackedDialogue()
    tracker.advance([tracked, other], [first[:2], second[:1]])
    assert len(tracked.states) == 2 and len(other.states) == 1
    tracker.advance([tracked], [first[:3]])
    assert tracked.states == whole
    with pytest.raises(DSuiteError, match="does not start with"):
        tracker.advance([tracked], [second[:4]])

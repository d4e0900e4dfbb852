"""The DST verifier: labelled decisions from MultiWOZ, thresholds chosen by replay, and the tracker on the
real base with the shipped adapter (its thresholds at the extremes give exactly the rule baseline)."""

import math

import pytest

from adapters import AdapterManager, Registry
from domains.customer_service.dst_adapter import TrackedDialogue, gold_state
from domains.customer_service.dst_candidates import ceiling, turn_candidates
from domains.customer_service.dst_verifier import (
    VerifierTracker,
    candidate_messages,
    choose_thresholds,
    joint_goal_accuracy,
    verifier_records,
    verifier_settings,
)
from domains.customer_service.normalize import normalize_state
from domains.customer_service.rule_tracker import track_dialogue
from eval.data import multiwoz

RULES = {"rule": -math.inf, "offer": math.inf}


def _dialogues(n: int = 12) -> list[list[dict]]:
    return [multiwoz.user_turns(d) for d in multiwoz.load_dialogues("dev", limit=n)]


def test_every_candidate_becomes_one_labelled_record():
    dialogues = multiwoz.load_dialogues("dev", limit=6)
    records = verifier_records(dialogues, multiwoz.user_turns)
    candidates = [c for d in dialogues for turn in turn_candidates(multiwoz.user_turns(d)) for c in turn]
    assert len(records) == len(candidates) > 20
    yes, no = verifier_settings()["answers"]
    answers = [r["messages"][-1]["content"] for r in records]
    assert answers == [yes if c.correct else no for c in candidates]
    assert {yes, no} <= set(answers)  # both labels occur
    first = candidates[0]
    assert f"{first.slot.replace('-', ' ')} = {first.value}" in records[0]["messages"][1]["content"]


def test_the_prompt_says_where_a_candidate_comes_from():
    rule, offer = verifier_settings()["sources"].values()
    for kind, source in (("rule", rule), ("offer", offer)):
        from domains.customer_service.dst_candidates import Candidate

        text = candidate_messages(
            "How about Cotto ?", "Sounds great !", "restaurant", Candidate(kind, "a-b", "c")
        )
        assert source in text[1]["content"] and "Domain in focus: restaurant" in text[1]["content"]


def _oracle(dialogues):
    """Scored candidates whose margin is +1 exactly when the candidate is right."""
    return [
        [[(c, 1.0 if c.correct else -1.0) for c in turn] for turn in turn_candidates(t)] for t in dialogues
    ]


def test_thresholds_replay_the_rules_and_reach_the_ceiling_with_perfect_margins():
    dialogues = _dialogues()
    golds = [[gold_state(t) for t in turns] for turns in dialogues]
    scored = _oracle(dialogues)
    figures = ceiling(dialogues)
    assert joint_goal_accuracy(scored, golds, lambda c, m: m > RULES[c.kind]) == pytest.approx(
        figures["rules"], abs=1e-4
    )
    choice = choose_thresholds(scored, golds)
    assert choice["rules_jga"] == pytest.approx(figures["rules"], abs=1e-4)
    assert choice["jga"] == pytest.approx(figures["gold_both"], abs=1e-4)
    assert -1.0 < choice["thresholds"]["rule"] < 1.0 and -1.0 < choice["thresholds"]["offer"] < 1.0


def test_thresholds_stay_at_the_rules_when_the_margins_say_nothing():
    dialogues = _dialogues(6)
    golds = [[gold_state(t) for t in turns] for turns in dialogues]
    flat = [[[(c, 0.0) for c in turn] for turn in turn_candidates(t)] for t in dialogues]
    choice = choose_thresholds(flat, golds)
    assert choice["jga"] >= choice["rules_jga"]
    if choice["jga"] == choice["rules_jga"]:
        assert choice["thresholds"] == RULES  # ties keep the baseline


@pytest.fixture(scope="module")
def manager(embedded_base, tmp_path_factory):
    manager = AdapterManager(embedded_base, Registry(tmp_path_factory.mktemp("registry")))
    yield manager
    manager.close()


def test_extreme_thresholds_give_the_rule_tracker_whatever_the_adapter_says(manager):
    turns = _dialogues(2)
    states = VerifierTracker(manager, thresholds=RULES).track(turns)
    assert states == [[normalize_state(s) for s in track_dialogue(t)] for t in turns]
    nothing = VerifierTracker(manager, thresholds={"rule": math.inf, "offer": math.inf}).track(turns[:1])
    assert all(state == {} for state in nothing[0])


def test_tracking_in_two_steps_gives_the_states_of_one_go(manager):
    turns = _dialogues(2)
    tracker = VerifierTracker(manager)
    whole = tracker.track(turns)
    tracked = [TrackedDialogue() for _ in turns]
    tracker.advance(tracked, [t[:2] for t in turns])
    tracker.advance(tracked, turns)
    assert [t.states for t in tracked] == whole


def test_the_shipped_adapter_keeps_what_the_customer_plainly_asks_for(manager):
    turn = {"system": "", "user": "I am looking for a cheap restaurant in the north of town."}
    state = VerifierTracker(manager).track([[turn]])[0][0]
    assert state.get("restaurant-pricerange") == "cheap" and state.get("restaurant-area") == "north"


def test_thresholds_must_name_both_kinds(manager):
    from core_model.errors import DSuiteError

    with pytest.raises(DSuiteError, match="offer"):
        VerifierTracker(manager, thresholds={"rule": 0.0})


def test_cli_chooses_thresholds_on_validation_dialogues():
    from tests.conftest import invoke_dsuite, last_json

    out = invoke_dsuite("cs", "verifier-thresholds", "--limit", "2")
    assert out.returncode == 0, out.stderr
    report = last_json(out.stdout)
    assert (
        report["adapter"].startswith("customer_service@") and report["turns"] > 5 and report["candidates"] > 5
    )
    assert report["jga"] >= report["rules_jga"] and set(report["thresholds"]) == {"rule", "offer"}
    refused = invoke_dsuite("cs", "verifier-thresholds", "--limit", "2", "--write")
    assert refused.returncode != 0 and "drop --limit" in refused.stderr

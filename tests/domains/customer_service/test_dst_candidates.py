"""Rule-tracker candidates: replaying the rules' own decisions gives the rule baseline, gold ones bound it."""

from domains.customer_service.dst_candidates import ceiling, decided_states, turn_candidates
from domains.customer_service.normalize import normalize_state
from domains.customer_service.rule_tracker import track_dialogue
from eval.data import multiwoz
from tests.conftest import invoke_dsuite, last_json


def _dialogues(n: int = 12) -> list[list[dict]]:
    return [multiwoz.user_turns(d) for d in multiwoz.load_dialogues("dev", limit=n)]


def test_keeping_the_rule_candidates_replays_the_rule_tracker():
    for turns in _dialogues():
        candidates = turn_candidates(turns)
        assert {c.kind for turn in candidates for c in turn} <= {"rule", "offer"}
        assert all(c.correct is not None for turn in candidates for c in turn)  # gold states were given
        replayed = decided_states(candidates, lambda c: c.kind == "rule")
        assert replayed == [normalize_state(s) for s in track_dialogue(turns)]


def test_candidates_without_gold_states_carry_no_label():
    turns = [
        {"system": "How about Cotto? It is in the centre.", "user": "I want a cheap hotel in the north."}
    ]
    candidates = turn_candidates(turns)[0]
    assert candidates and all(c.correct is None for c in candidates)
    assert ("rule", "hotel-area", "north") in {(c.kind, c.slot, c.value) for c in candidates}


def test_gold_decisions_bound_the_rules_from_above():
    figures = ceiling(_dialogues())
    assert figures["turns"] > 50
    assert figures["rules"] <= figures["gold_rule_decisions"] <= figures["gold_both"]
    assert figures["rules"] <= figures["gold_offer_decisions"] <= figures["gold_both"]
    assert figures["gold_both"] > figures["rules"]  # the candidates hold something to gain


def test_cli_prints_the_ceiling_of_a_split():
    out = invoke_dsuite("cs", "dst-ceiling", "--split", "validation")
    assert out.returncode == 0, out.stderr
    figures = last_json(out.stdout)
    assert figures["split"] == "validation" and figures["turns"] > 0
    assert 0 < figures["rules"] < figures["gold_both"] <= 1
    bad = invoke_dsuite("cs", "dst-ceiling", "--split", "train")
    assert bad.returncode == 2 and "validation, dev or test" in bad.stderr

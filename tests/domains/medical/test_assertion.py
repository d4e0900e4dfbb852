"""Assertion (ConText-style rules as data) on hand-written sentences and on the shared NegEx rows."""

from __future__ import annotations

import json

import pytest

from core_model.errors import DSuiteError
from domains.medical.assertion import assert_concept, assert_concepts
from domains.medical.context import ContextRules
from tests.conftest import invoke_dsuite, last_json


@pytest.mark.parametrize(
    ("text", "concept", "expected"),
    [
        ("Patient denies chest pain.", "chest pain", "negated"),
        ("No fever, chills, or night sweats.", "night sweats", "negated"),
        ("Chest x-ray was negative for pneumonia.", "pneumonia", "negated"),
        ("Pneumothorax has been ruled out.", "pneumothorax", "negated"),
        ("Patient w/o hx of diabetes.", "diabetes", "negated"),  # clinical shorthand for "without"
        ("Pt w/out fever.", "fever", "negated"),
        ("Neg for pneumonia.", "pneumonia", "negated"),
        ("Mother had breast cancer.", "breast cancer", "family"),
        ("History of myocardial infarction in 2010.", "myocardial infarction", "historical"),
        ("Return if vomiting develops.", "vomiting", "hypothetical"),
        ("Possible early pneumonia in the left lower lobe.", "pneumonia", "possible"),
        ("She has hypertension.", "hypertension", "present"),
        ("No change in the size of the nodule.", "nodule", "present"),  # pseudo-trigger
        ("No fever but reports a productive cough.", "cough", "present"),  # terminated scope
        ("No fever secondary to pneumonia.", "pneumonia", "present"),  # a cause ends a negation ...
        # ... but not a hypothetical: the cause of a risk is as hypothetical as the risk (consent text)
        ("Complications including death secondary to DVT were explained.", "DVT", "hypothetical"),
        ("Return if short of breath due to pneumonia.", "pneumonia", "hypothetical"),
        ("CTA chest PE study showed a clear chest.", "PE", "possible"),  # a test for it, not a finding
        ("A stroke workup was ordered.", "stroke", "possible"),
        ("ABDOMEN: Bowel sounds are present, nontender.", "Bowel sounds", "present"),  # "self": no scope
    ],
)
def test_hand_written_sentences(text, concept, expected):
    assert assert_concepts([(text, concept)])[0]["assertion"] == expected


def test_missing_concept_is_reported_not_guessed():
    result = assert_concepts([("Nothing relevant here.", "asthma")])[0]
    assert result == {"assertion": None, "modifiers": [], "found": False}  # not "present": it is not there
    assert assert_concept("No chest pain.", "diabetes")["assertion"] is None


@pytest.mark.parametrize(
    ("text", "concept", "empty"), [("", "fever", "text"), ("No fever.", "  ", "concept")]
)
def test_empty_text_or_concept_is_an_error(text, concept, empty):
    with pytest.raises(DSuiteError, match=f"The {empty} is empty"):
        assert_concept(text, concept)
    with pytest.raises(DSuiteError, match=f"The {empty} of item 1 is empty"):
        assert_concepts([("Denies fever.", "fever"), (text, concept)])


def test_cli_assert_refuses_a_concept_not_in_the_text():
    missing = invoke_dsuite("medical", "assert", "No chest pain.", "diabetes")
    assert missing.returncode == 2 and not missing.stdout.strip(), missing.stdout
    assert "'diabetes' does not occur in the text" in missing.stderr and "Traceback" not in missing.stderr
    empty = invoke_dsuite("medical", "assert", "No chest pain.", "")
    assert empty.returncode == 2 and "The concept is empty" in empty.stderr
    found = invoke_dsuite("medical", "assert", "No chest pain.", "chest pain")
    assert found.returncode == 0, found.stderr[-2000:]
    assert last_json(found.stdout)["assertion"] == "negated" and last_json(found.stdout)["found"] is True


def test_user_rules_extend_the_shipped_ones(tmp_path):
    rules = json.loads(ContextRules.__init__.__globals__["CONTEXT_RULES"].read_text())
    rules["rules"].append({"literal": "zero", "category": "NEGATED_EXISTENCE", "direction": "forward"})
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    text = "Zero seizures since the last visit."
    assert assert_concepts([(text, "seizures")])[0]["assertion"] == "present"
    assert assert_concepts([(text, "seizures")], rules_path=str(path))[0]["assertion"] == "negated"


def test_a_terminator_spares_only_the_categories_it_lists(tmp_path):
    rules = json.loads(ContextRules.__init__.__globals__["CONTEXT_RULES"].read_text())
    for rule in rules["rules"]:
        if rule["literal"] == "secondary to":
            rule["spares"] = ["HYPOTHETICAL", "NEGATED_EXISTENCE"]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))
    text = "No fever secondary to pneumonia."
    assert assert_concepts([(text, "pneumonia")], rules_path=str(path))[0]["assertion"] == "negated"
    rules["rules"][0]["spares"] = ["BOGUS"]
    path.write_text(json.dumps(rules))
    with pytest.raises(DSuiteError, match="rules/0"):
        ContextRules(path)


def test_invalid_rules_file_names_the_problem(tmp_path):
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps({"version": 1, "rules": [{"literal": "no", "category": "NEGATED", "direction": "x"}]})
    )
    with pytest.raises(DSuiteError, match="rules/0"):
        ContextRules(path)


def test_negated_f1_on_shared_negex_rows():
    """Done-when: negated-class F1 >= 0.95 on the shared NegEx/ConText rows."""
    from domains.medical.tasks import _assertion_predict, _assertion_score
    from eval.data import negex
    from eval.registry import SystemSpec

    rows = negex.load()
    metrics = _assertion_score(rows, _assertion_predict(rows, SystemSpec()))
    assert metrics["negated_f1"] >= 0.95, metrics
    assert metrics["affirmed_f1"] >= 0.98, metrics

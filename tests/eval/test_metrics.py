"""Metric functions on small cases whose expected values were worked out by hand."""

from __future__ import annotations

import math

import pytest

from core_model.errors import DSuiteError
from eval import metrics as m


def test_accuracy_and_length_checks():
    assert m.accuracy(["a", "b", "a", "c"], ["a", "b", "b", "c"]) == 0.75
    with pytest.raises(DSuiteError, match="2 references and 1 predictions"):
        m.accuracy(["a", "b"], ["a"])
    with pytest.raises(DSuiteError, match="empty"):
        m.accuracy([], [])


def test_per_class_prf_and_macro_f1():
    y_true = ["pos", "pos", "neg", "neg", "neu"]
    y_pred = ["pos", "neg", "neg", "pos", "neg"]
    # pos: tp1 fp1 fn1 -> P .5 R .5 F .5; neg: tp1 fp2 fn1 -> P 1/3 R 1/2 F .4; neu: tp0 -> 0
    scores = m.per_class_prf(y_true, y_pred)
    assert scores["pos"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["neg"]["precision"] == pytest.approx(1 / 3)
    assert scores["neg"]["f1"] == pytest.approx(0.4)
    assert scores["neu"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m.macro_f1(y_true, y_pred) == pytest.approx((0.5 + 0.4 + 0.0) / 3)
    # restricting labels averages over those only
    assert m.macro_f1(y_true, y_pred, labels=["pos"]) == 0.5
    assert m.prf(0, 0, 0) == (0.0, 0.0, 0.0)


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    y_true = [0, 1, 2, 2, 1, 0, 3, 3, 3]
    y_pred = [0, 2, 2, 2, 1, 1, 3, 0, 3]
    assert m.macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


def test_confusion():
    labels, matrix = m.confusion(["a", "a", "b"], ["a", "b", "b"], labels=["a", "b"])
    assert labels == ["a", "b"]
    assert matrix == [[1, 1], [0, 1]]


def test_exact_match_and_token_f1():
    assert m.normalize_answer("The  Revenue, in 2019!") == "revenue in 2019"
    assert m.exact_match("the Answer.", "answer") == 1.0
    assert m.exact_match("answers", ["answer", "reply"]) == 0.0
    assert m.exact_match("reply", ["answer", "reply"]) == 1.0
    # pred tokens: net income rose ; gold: net income fell sharply -> common 2, P 2/3, R 2/4, F 4/7
    assert m.token_f1("Net income rose", "net income fell sharply") == pytest.approx(4 / 7)
    assert m.token_f1("", "") == 1.0
    assert m.token_f1("x", "") == 0.0
    assert m.token_f1("abc", ["zzz", "abc"]) == 1.0


def test_numeric_match():
    assert m.parse_number("(1,234.5)") == -1234.5
    assert m.parse_number("about 12.5%") == 12.5
    assert m.parse_number("-$3") == -3.0
    assert m.parse_number("none here") is None
    assert m.numeric_match("The answer is 1,010", "1000") == 1.0  # 1 % relative tolerance
    assert m.numeric_match("1,011", "1000") == 0.0
    assert m.numeric_match("0.0000001", 0) == 1.0
    assert m.numeric_match("no number", "5") == 0.0
    assert m.numeric_match("5.2", "5", rel_tol=0.05) == 1.0


def test_average_precision_map_and_recall_at_k():
    # relevant {A, C}: hits at rank 1 (1/1) and rank 3 (2/3) -> (1 + 2/3) / 2 = 5/6
    assert m.average_precision(["A", "B", "C", "D"], {"A", "C"}) == pytest.approx(5 / 6)
    # relevant {B, E}, E never ranked: (1/2) / 2 = 1/4
    assert m.average_precision(["A", "B", "C"], {"B", "E"}) == pytest.approx(0.25)
    assert m.average_precision(["A", "A", "B"], {"B"}) == pytest.approx(0.5)  # duplicate counted once
    assert m.mean_average_precision([["A", "B", "C", "D"], ["A", "B", "C"]], [{"A", "C"}, {"B", "E"}]) == (
        pytest.approx((5 / 6 + 0.25) / 2)
    )
    assert m.recall_at_k(["A", "B", "C"], {"C", "D"}, k=2) == 0.0
    assert m.recall_at_k(["A", "B", "C"], {"C", "D"}, k=3) == 0.5
    assert m.mean_recall_at_k([["A"], ["B", "C"]], [{"A"}, {"C", "X"}], k=2) == pytest.approx(0.75)
    with pytest.raises(DSuiteError, match="k must be at least 1"):
        m.recall_at_k(["A"], {"A"}, k=0)


def test_joint_goal_accuracy_and_slot_f1():
    gold = [
        {"hotel-area": "centre"},
        {"hotel-area": "centre", "hotel-stars": "4"},
        {"hotel-area": "centre", "hotel-stars": "4", "hotel-parking": "yes"},
    ]
    pred = [
        {"hotel-area": "Centre ", "hotel-name": "none"},  # normalised equal, "none" means unset
        {"hotel-area": "centre", "hotel-stars": "3"},
        {"hotel-area": "centre", "hotel-stars": "4", "hotel-parking": "yes"},
    ]
    assert m.joint_goal_accuracy(pred, gold) == pytest.approx(2 / 3)
    # pairs: gold 6, pred 6, tp 5 -> P = R = F = 5/6
    scores = m.slot_prf(pred, gold)
    assert scores["slot_precision"] == pytest.approx(5 / 6)
    assert scores["slot_recall"] == pytest.approx(5 / 6)
    assert m.slot_f1(pred, gold) == pytest.approx(5 / 6)
    assert m.slot_f1([{}], [{}]) == 0.0 and m.joint_goal_accuracy([{}], [{}]) == 1.0


def test_oos_metrics():
    y_true = ["oos", "oos", "balance", "transfer", "oos"]
    y_pred = ["oos", "balance", "oos", "transfer", "oos"]
    # OOS tp 2, fp 1, fn 1 -> P 2/3, R 2/3; in scope: balance wrong, transfer right -> 0.5
    scores = m.oos_metrics(y_true, y_pred)
    assert scores["oos_recall"] == pytest.approx(2 / 3)
    assert scores["oos_precision"] == pytest.approx(2 / 3)
    assert scores["in_scope_accuracy"] == 0.5
    assert m.oos_recall(["x", "y"], ["x", "y"], oos_label="y") == 1.0
    assert m.oos_precision(["x", "x"], ["x", "x"]) == 0.0


def test_perplexity():
    # two documents: nll 2.0 over 2 tokens and 4.0 over 2 tokens -> exp(6/4)
    assert m.perplexity([2.0, 4.0], [2, 2]) == pytest.approx(math.exp(1.5))
    with pytest.raises(DSuiteError, match="no scored tokens"):
        m.perplexity([0.0], [0])
    with pytest.raises(DSuiteError, match="one count per document"):
        m.perplexity([1.0], [1, 2])


def test_json_validity():
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string"}, "score": {"type": "number"}},
        "required": ["code"],
    }
    ok, reason = m.validate_json('{"code": "E11.9", "score": 0.5}', schema)
    assert ok and reason is None
    ok, reason = m.validate_json('{"score": "high"}', schema)
    assert not ok and "schema" in reason
    ok, reason = m.validate_json("{code: 1}", schema)
    assert not ok and reason.startswith("not JSON")
    assert m.json_validity(['{"code": "A"}', "[]", "oops", '{"code": 1}'], schema) == 0.25
    assert m.json_validity(["[]", "1"]) == 1.0
    with pytest.raises(DSuiteError, match="schema itself is invalid"):
        m.validate_json("{}", {"type": 12})

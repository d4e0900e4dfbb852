"""Asking many advisors one turn each in one batch (``ask_many``) and the prepare/finish split of ``ask``."""

from __future__ import annotations

import logging

import pytest

from core_model.errors import DSuiteError
from domains.finance.advisor import FinanceAdvisor, ask_many
from domains.finance.tasks import grounding

SCRIPTS = [
    [
        "I'm 35, saving for retirement in 30 years with $20,000 and moderate risk.",
        "How is SPY doing?",
        "What does the RSI say?",
    ],
    ["Can you guarantee me a 10% return?", "What is an index fund?"],
    ["I have $5,000 for 3 years. Is NVDA too risky?"],
]
DRAFT_TOKENS = 12


def _model_advisor(adapter: str | None = None) -> FinanceAdvisor:
    advisor = FinanceAdvisor(mode="model", adapter=adapter, use_retrieval=False)
    advisor.model.max_new_tokens = DRAFT_TOKENS
    return advisor


def _lockstep(advisors: list[FinanceAdvisor], scripts: list[list[str]]) -> list[list[dict]]:
    answers: list[list[dict]] = [[] for _ in scripts]
    for k in range(max(len(s) for s in scripts)):
        live = [i for i, script in enumerate(scripts) if k < len(script)]
        asked = ask_many([advisors[i] for i in live], [scripts[i][k] for i in live])
        for i, answer in zip(live, asked, strict=True):
            answers[i].append(answer.to_dict())
    return answers


@pytest.mark.slow
@pytest.mark.usefixtures("embedded_base")
def test_batched_advisors_answer_like_sequential_ones():
    sequential = []
    for script in SCRIPTS:
        advisor = _model_advisor()
        sequential.append(([advisor.ask(text).to_dict() for text in script], advisor))
    batched_advisors = [_model_advisor() for _ in SCRIPTS]
    batched = _lockstep(batched_advisors, SCRIPTS)
    for (answers, advisor), lockstep, twin in zip(sequential, batched, batched_advisors, strict=True):
        assert lockstep == answers  # text, body, state, grounding, drafts' dropped sentences ...
        assert twin.history == advisor.history and twin.state.to_dict() == advisor.state.to_dict()
    assert batched[1][0]["answered_by"] == "policy" and batched[1][1]["answered_by"] == "base"
    assert all(a["disclaimer"] in a["text"] for answers in batched for a in answers)


@pytest.mark.slow
@pytest.mark.usefixtures("embedded_base")
def test_batched_adapter_fallback_warns_and_answers_with_the_base(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DSUITE_ADAPTERS", str(tmp_path / "empty-registry"))
    advisors = [_model_advisor("finance-v9"), _model_advisor("finance-v9")]  # not registered, not shipped
    with caplog.at_level(logging.WARNING, logger="domains.finance.advisor"):
        answers = ask_many(advisors, ["What is an index fund?", "How is SPY doing?"])
    assert [a.answered_by for a in answers] == ["base", "base"]
    assert [a.model.adapter for a in advisors] == [None, None]
    assert "finance adapter 'finance-v9' unavailable" in caplog.text


def test_prepare_finishes_refusals_and_finish_assembles_the_answer():
    advisor = FinanceAdvisor(mode="extractive", use_retrieval=False)
    refused = advisor.prepare("Can you guarantee me a 10% return?")
    assert refused.answer is not None and refused.answer.refused == "guaranteed_return"
    assert refused.prompt is None and len(advisor.history) == 1
    with pytest.raises(DSuiteError, match="refused in prepare"):
        advisor.finish(refused, "")
    turn = advisor.prepare("How is SPY doing?")
    assert turn.answer is None and turn.prompt is None  # extractive: nothing for a model to draft
    answer = advisor.finish(turn, "")
    assert answer.snapshots[0]["symbol"] == "SPY" and answer.answered_by == "extractive"
    assert advisor.history[-1] == ("How is SPY doing?", answer.text)
    twin = FinanceAdvisor(mode="extractive", use_retrieval=False)
    twin.ask("Can you guarantee me a 10% return?")
    assert twin.ask("How is SPY doing?").to_dict() == answer.to_dict()


def test_model_prompt_is_prepared_from_the_turn():
    advisor = FinanceAdvisor(mode="model", adapter=None, use_retrieval=False)
    turn = advisor.prepare("I have $5,000 for 3 years. Is SPY risky?")
    assert turn.answer is None and "Question: I have $5,000 for 3 years. Is SPY risky?" in turn.prompt
    assert "SPY" in turn.prompt and advisor.history == []  # nothing recorded before finish


def test_ask_many_checks_its_arguments():
    one, two = (FinanceAdvisor(mode="extractive", use_retrieval=False) for _ in range(2))
    with pytest.raises(DSuiteError, match="expected pairs"):
        ask_many([one, two], ["What is an index fund?"])
    with pytest.raises(DSuiteError, match="appears twice"):
        ask_many([one, one], ["What is an index fund?", "How is SPY doing?"])
    assert ask_many([], []) == []


def test_grounding_predict_keeps_each_conversation_in_order():
    examples = grounding.load("test")[:4]  # 3, 3, 3 and 2 turns: lockstep rounds of different widths
    outputs = grounding.predict(examples, grounding.SystemSpec(baseline="extractive"))
    for example, output in zip(examples, outputs, strict=True):
        advisor = FinanceAdvisor(mode="extractive")
        expected = [advisor.ask(turn["user"]) for turn in example["turns"]]
        assert [t["answer"] for t in output["turns"]] == [a.text for a in expected]
        assert [t["state"] for t in output["turns"]] == [a.state for a in expected]

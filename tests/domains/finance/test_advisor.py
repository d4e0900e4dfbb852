"""The advisor: state across turns, refusals, disclaimer, number grounding (extractive mode, no model)."""

from __future__ import annotations

import pytest

from core_model.errors import DSuiteError
from domains.finance.advisor import FinanceAdvisor
from domains.finance.grounding import check_numbers, keep_grounded_sentences
from domains.finance.policy import check_request, disclaimer


def test_state_is_carried_across_a_multi_turn_script():
    advisor = FinanceAdvisor(mode="extractive", use_retrieval=False)
    first = advisor.ask("I'm 35, saving for retirement in 30 years with $20,000 and moderate risk.")
    assert first.state["goal"] == "retirement" and first.state["horizon_years"] == 30.0
    assert first.state["risk_tolerance"] == "medium" and first.state["amount"] == 20000.0
    second = advisor.ask("How is SPY doing?")
    assert second.state["goal"] == "retirement" and second.state["instruments"] == ["SPY"]
    assert second.snapshots[0]["symbol"] == "SPY" and second.changed == ["instruments"]
    third = advisor.ask("What does the RSI say?")  # no ticker: SPY comes from the state
    assert third.snapshots[0]["symbol"] == "SPY"
    assert third.state["horizon_years"] == 30.0
    assert "relative strength index" in [t["term"] for t in third.cited_terms]
    fourth = advisor.ask("Actually I'm aggressive.")
    assert fourth.state["risk_tolerance"] == "high" and fourth.state["goal"] == "retirement"
    for answer in (first, second, third, fourth):
        assert answer.disclaimer in answer.text and answer.grounding.ok


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("Can you guarantee me a 10% return?", "guaranteed_return"),
        ("Is there a risk-free profit with options?", "guaranteed_return"),
        ("My friend at Acme told me unannounced earnings; should I buy?", "insider_trading"),
        ("Let's pump and dump this coin", "market_manipulation"),
    ],
)
def test_refusals_explain(text, rule):
    answer = FinanceAdvisor(mode="extractive", use_retrieval=False).ask(text)
    assert answer.refused == rule
    assert len(answer.body) > 60 and answer.disclaimer in answer.text


def test_ordinary_questions_are_not_refused():
    assert check_request("What is an index fund?") is None
    assert check_request("What is a guaranteed investment certificate's disclaimer?") is None


def test_grounding_check_against_sources():
    sources = ["SPY on 2020-08-28: close 350.58, 14-day RSI 79.7", "I have $20,000"]
    assert check_numbers("SPY closed at 350.58 with an RSI near 79.7 and you have $20,000.", sources).ok
    assert check_numbers("SPY closed near 350.6.", sources).ok  # same number at lower precision
    bad = check_numbers("SPY will reach 400 soon.", sources)
    assert not bad.ok and bad.ungrounded == ["400"]
    kept, dropped = keep_grounded_sentences("RSI is 79.7. It will rise 12% next week.", sources)
    assert kept == "RSI is 79.7." and dropped == ["It will rise 12% next week."]
    looped = "AAPL: ticker symbol for Apple Inc.\n\nAAPL: ticker symbol for Apple\nRSI is 79.7. RSI is 79.7!"
    assert keep_grounded_sentences(looped, sources) == ("AAPL: ticker symbol for Apple Inc. RSI is 79.7.", [])
    assert keep_grounded_sentences("Yes, buy. Yes. Buy.", [])[0] == "Yes, buy. Yes. Buy."  # short ones stay


def test_empty_question_is_an_error():
    with pytest.raises(DSuiteError, match="non-empty question"):
        FinanceAdvisor(mode="extractive", use_retrieval=False).ask("  ")


def test_disclaimer_text():
    assert "not personal financial advice" in disclaimer()


def test_simulated_figures_are_said_to_be_simulated():
    """AAPL has no price history in the shared data: its figures come from the seeded simulation, and the
    answer says so (the "simulated:seed=0" tag alone read as real prices); SPY's replayed ones do not."""
    advisor = FinanceAdvisor(mode="extractive", use_retrieval=False)
    aapl = advisor.ask("What is the price of AAPL?").text
    assert "Figures: AAPL" in aapl and "there is no market data for AAPL here" in aapl
    assert "not from real prices" in aapl and "SPY" in aapl.split("covers")[1]  # what the history covers
    spy = FinanceAdvisor(mode="extractive", use_retrieval=False).ask("How is SPY doing?").text
    assert "Figures: SPY" in spy and "no market data" not in spy


def test_a_symbol_the_extractor_does_not_know_gets_a_hint_and_its_dollar_form_gets_figures():
    advisor = FinanceAdvisor(mode="extractive", use_retrieval=False)
    unknown = advisor.ask("How is ZZZQ doing?").text
    assert "If ZZZQ is a ticker symbol, write it with a dollar sign ($ZZZQ)" in unknown
    known = advisor.ask("How is $ZZZQ doing?").text
    assert "Figures: ZZZQ" in known and "there is no market data for ZZZQ here" in known
    assert "dollar sign" not in known
    for text in ("How is SPY doing?", "What is an ETF?", "I live in the US"):  # known tickers, terms, words
        assert "dollar sign" not in advisor.ask(text).text, text


def test_a_buy_or_sell_question_on_a_named_security_gets_figures_and_no_draft():
    advisor = FinanceAdvisor(mode="extractive", use_retrieval=False)
    answer = advisor.ask("Is AAPL a good buy right now?")
    assert answer.refused == "security_recommendation" and answer.answered_by == "policy"
    assert answer.text.startswith("I can't tell you whether to buy, sell or hold a particular security")
    assert "Figures: AAPL" in answer.text and answer.disclaimer in answer.text and answer.grounding.ok
    model = FinanceAdvisor(mode="model", use_retrieval=False)  # prepare alone loads no model
    for question in ("Should I sell my KO shares?", "Will SPY go up next week?"):
        turn = model.prepare(question)
        assert turn.prompt is None and turn.no_draft.rule == "security_recommendation", question
    general = ("Is an index fund a good investment for 10 years?", "What is the P/E ratio of KO telling me?")
    for question in general:
        turn = model.prepare(question)  # no named security asked about, or no recommendation asked for
        assert turn.no_draft is None and turn.prompt is not None, question


def test_a_draft_of_a_word_or_two_is_left_out_and_the_figures_answer():
    advisor = FinanceAdvisor(mode="model", use_retrieval=False)  # finish takes the draft as given
    answer = advisor.finish(advisor.prepare("How is SPY doing?"), "low")
    assert answer.body == "" and answer.text.startswith("Figures: SPY")
    answer = advisor.finish(advisor.prepare("How is SPY doing?"), "SPY has a 14-day RSI.")
    assert answer.body == "SPY has a 14-day RSI."


def test_retrieved_fibo_entries_are_cited_only_when_they_are_concepts():
    """Retrieval finds FIBO properties and individuals too ("has goal", "allows auto-reinvestment", a
    currency); the advisor cites retrieved entries only when they are concepts (``Term.is_concept``)."""
    from domains.finance.retrieval import finance_retriever

    turns = [
        "How has PEP performed over the last month?",
        "How risky is it to put all my savings into one tech stock?",
        "Is ORCL more volatile than the market?",
    ]
    retriever = finance_retriever(k=3)
    advisor = FinanceAdvisor(mode="extractive", retriever=retriever)
    kinds = {(t.term, t.ref): t for t in advisor.dictionary.terms}
    found = [
        kinds[d.metadata["term"], d.metadata["ref"]]
        for turn in turns
        for d in retriever.invoke(turn)
        if d.metadata["kind"] == "term"
    ]
    assert any(not t.is_concept for t in found)  # what is left out
    cited = [kinds[c["term"], c["ref"]] for turn in turns for c in advisor.ask(turn).cited_terms]
    assert cited, "the advisor should still cite retrieved concepts"
    assert all(t.is_concept for t in cited)


def test_retrieved_terms_below_the_similarity_floor_are_not_cited():
    """"How is SPY doing right now?" retrieves "security trading status" and the like, all under
    TERM_MIN_SCORE: the answer gives the figures without them; a well-matched term is still cited."""
    from domains.finance.advisor import TERM_MIN_SCORE
    from domains.finance.retrieval import finance_retriever

    retriever = finance_retriever(k=3)
    advisor = FinanceAdvisor(mode="extractive", retriever=retriever)
    weak = "How is SPY doing right now?"
    assert all(d.metadata["score"] < TERM_MIN_SCORE for d in retriever.invoke(weak))
    assert advisor.ask(weak).cited_terms == []
    strong = advisor.ask("How do I rebalance my portfolio?")  # names "portfolio"; retrieval adds rebalancing
    assert [t["term"] for t in strong.cited_terms][:2] == ["portfolio", "rebalancing"]

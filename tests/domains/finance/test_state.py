"""The advisor's dialog state read from the user's words: negated risk levels, amounts, horizons."""

from __future__ import annotations

import pytest

from domains.finance.extraction import extract
from domains.finance.state import DialogState, money_value, parse_number


def state_after(*turns: str, state: DialogState | None = None) -> DialogState:
    state = state or DialogState()
    for text in turns:
        state.update(text, extract(text), set())
    return state


@pytest.mark.parametrize(
    ("text", "level"),
    [
        # a negated level is ruled out; the form records the most cautious level left
        ("I don't want high risk", "low"),
        ("I don\u2019t want high risk", "low"),
        ("no high-risk stuff please", "low"),
        ("I won't take high risk with this money", "low"),
        ("Something not too risky", "low"),
        ("I don't want to take too much risk", "low"),
        ("I can't afford to lose money", "low"),
        ("I'm not looking for low risk", "medium"),
        ("I am not risk averse", "medium"),
        ("I'm not conservative, but not aggressive either", "medium"),
        # affirmed levels, double negatives and clause breaks
        ("I want high risk", "high"),
        ("I don't mind high risk", "high"),
        ("I'm not afraid of high risk", "high"),
        ("No, I want high risk", "high"),
        ("A moderate risk, not high", "medium"),
        # no level said
        ("Is SPY risky?", None),
        ("Is NVDA too risky for me?", None),
        # a level said of an asset or a portfolio is not the client's
        ("Is bitcoin high risk?", None),
        ("Are bonds low risk?", None),
        ("Is the stock market high risk right now?", None),
        ("Isn't TSLA high risk?", None),
        ("Bitcoin is high risk, right?", None),
        ("Why is crypto so high risk?", None),
        ("What makes bitcoin high risk?", None),
        ("That's too aggressive for me", None),
        ("I think bitcoin is high risk", None),
        ("What is a conservative portfolio?", None),
        # ... while a level the client asks for still counts
        ("Is a low-risk fund right for me?", "low"),
        ("Is there a low risk option?", "low"),
        ("I want something that is low risk", "low"),
        ("Something that is low risk, please", "low"),
        ("My strategy is aggressive", "high"),
        ("I'm a conservative investor", "low"),
        ("What is a good low risk fund?", "low"),
        ("Is bitcoin a good choice for a conservative investor like me?", "low"),
    ],
)
def test_risk_tolerance(text, level):
    assert state_after(text).risk_tolerance == level


def test_a_question_about_an_assets_risk_keeps_the_clients_level():
    assert state_after("I'm conservative.", "Is bitcoin high risk?").risk_tolerance == "low"
    assert state_after("I'm aggressive.", "Are bonds low risk?").risk_tolerance == "high"


def test_a_negation_keeps_a_stored_level_it_does_not_rule_out():
    state = state_after("I have a moderate risk tolerance.", "I don't want high risk though.")
    assert state.risk_tolerance == "medium"
    state = state_after("I'm aggressive.", "Actually, I don't want high risk.")
    assert state.risk_tolerance == "low"


@pytest.mark.parametrize(
    ("text", "amount", "words"),
    [
        # European separators
        ("I have €10.000 to invest", 10000.0, "€10.000"),
        ("10.000,50 EUR", 10000.5, "10.000,50 EUR"),
        ("EUR 10.000", 10000.0, "EUR 10.000"),
        ("£2.500,00 in savings", 2500.0, "£2.500,00"),
        ("I could invest €1,5 million", 1500000.0, "€1,5 million"),
        ("I have €10 000 to invest", 10000.0, "€10 000"),
        ("CHF 10'000", 10000.0, "CHF 10'000"),
        ("I have 10.000 to invest", 10000.0, "10.000"),
        # US separators
        ("I have $10,000", 10000.0, "$10,000"),
        ("I have $10,000.50", 10000.5, "$10,000.50"),
        ("I have $10000", 10000.0, "$10000"),
        ("I have 10000 dollars", 10000.0, "10000 dollars"),
        ("I have $1,000,000", 1000000.0, "$1,000,000"),
        ("I want to invest 10000", 10000.0, "10000"),
        # scale words
        ("I have 5k", 5000.0, "5k"),
        ("I have $5k", 5000.0, "$5k"),
        ("I have 2.5 million", 2500000.0, "2.5 million"),
        ("Say 1.2m", 1200000.0, "1.2m"),
        ("$1.2 billion", 1.2e9, "$1.2 billion"),
        # ambiguous: 1.5 or 1500 million; the words are kept, the number is not guessed
        ("€1.500 million", None, "€1.500 million"),
        ("$1,250 million", None, "$1,250 million"),
    ],
)
def test_amounts(text, amount, words):
    state = state_after(text)
    assert (state.amount, state.amount_text) == (amount, words)


@pytest.mark.parametrize(
    "text",
    [
        "My 401k is doing fine",
        "NVDA has 30k employees",
        "I have 2 million shares",
        "I want a 5% return",
        "I'm 35 and live 5 m from the bank",
        "Is 3M a good buy?",
        "I have 25 years until retirement",
    ],
)
def test_numbers_that_are_not_amounts(text):
    assert state_after(text).amount is None


def test_the_first_amount_of_a_turn_wins_and_an_ambiguous_one_replaces_an_earlier_amount():
    assert state_after("I have 5k now and add $200 a month").amount == 5000.0
    state = state_after("I have $5,000.", "Sorry, I meant €1.500 million.")
    assert (state.amount, state.amount_text) == (None, "€1.500 million")


def test_parse_number_and_money_value():
    assert parse_number("10.000,50") == parse_number("10,000.50") == 10000.5
    assert parse_number("10.000") == parse_number("10,000") == parse_number("10 000") == 10000.0
    assert parse_number("1,5") == parse_number("1.5") == 1.5
    assert parse_number("1.500", scaled=True) is None and parse_number("1,0000") is None
    assert parse_number("1.2.3") is None and parse_number("0.500") == 0.5
    assert money_value("$10,000") == 10000.0 and money_value("10.000,50 EUR") == 10000.5
    assert money_value("no number") is None


@pytest.mark.parametrize(
    ("text", "years"),
    [
        ("between 5 and 10 years", 5.0),  # a range records its lower bound
        ("in 5-10 years", 5.0),
        ("3 to 5 years", 3.0),
        ("between 6 and 18 months", 0.5),
        ("20 years or so", 20.0),
        ("I'm 35 and 40 years from retirement", 40.0),
        ("I'm 35 years old", None),
        ("for 18 months", 1.5),
        ("long-term", 10.0),
        ("I'm not investing long-term", None),
    ],
)
def test_horizon(text, years):
    assert state_after(text).horizon_years == years

"""Requests for a person, by the rules of data/customer_service/handover.json, on hand-written phrasings and
on the real Bitext set."""

import pytest

from domains.customer_service.escalation import EscalationPolicy
from domains.customer_service.handover import asks_for_person
from domains.customer_service.intents import IntentPrediction
from domains.customer_service.sentiment import negativity

ASKS = [
    "can I speak to a real person",
    "Get me a representative please",
    "This is useless, let me talk to someone.",
    "Is there a live agent I can chat with?",
    "Please put me through to an operator",
    "transfer me to a human",
    "I'd like to talk to your manager",
    "Can I talk to somebody about my order?",
    "escalate this to a supervisor",
    "Agent!",
    "You are useless, I want a real person",
    "what do i need to do to talk with a person",  # how to reach one: still a request
    "I do not want to speak to a bot, I want a real person",
    "never mind, put me through to an operator",
]
NOT_ASKS = [
    "are you a real person?",
    "Are you a bot or a real person?",
    "could you be a live agent",
    "connect me to customer service",  # Bitext's contact_customer_service: the FAQ answers it
    "I need to speak with customer service",
    "speak arabic",
    "call my friend aj",
    "I made a transfer to someone yesterday and it has not arrived",
    "I need a real estate agent",
    "Where is my order 12345?",
    # a question whether one must, or a refusal: not a request
    "Do I need to speak to a representative to change my pin?",
    "do i have to talk to someone to close an account or can i in the app",
    "Can I do it without ever talking to anyone?",
    "I don't want to talk to a person",
]


@pytest.mark.parametrize("text", ASKS)
def test_a_request_for_a_person_is_read_as_one(text):
    assert asks_for_person(text)


@pytest.mark.parametrize("text", NOT_ASKS)
def test_questions_about_the_assistant_refusals_and_other_requests_are_not(text):
    assert asks_for_person(text) is None


def test_no_other_bitext_request_asks_for_a_person():
    """Every Bitext request of another intent (4,353, all splits): none reads as a request for a person."""
    from eval.data import bitext

    rows = [r for split in ("train", "validation", "test") for r in bitext.load(split)]
    others = [r["text"] for r in rows if r["label"] != "contact_human_agent"]
    assert len(others) > 4000
    assert [t for t in others if asks_for_person(t)] == []
    asks = [r["text"] for r in rows if r["label"] == "contact_human_agent"]
    assert sum(asks_for_person(t) is not None for t in asks) / len(asks) > 0.5


def test_the_policy_hands_over_on_the_phrase_when_the_intent_model_misses_it():
    unsure = IntentPrediction("get_refund", 0.26, "get_refund", [("get_refund", 0.26)])
    text = "get me a representative please"
    decision = EscalationPolicy().decide(unsure, negativity(text), answered=True, text=text)
    assert decision is not None and decision.reason == "requested"
    assert decision.detail == 'asked for a person: "get me a representative"'
    off = EscalationPolicy(settings={**EscalationPolicy().settings, "phrases": False})
    assert off.decide(unsure, negativity(text), answered=True, text=text) is None

"""The hub sends support requests, clinical notes and finance questions to their industry's pipeline
(through gradio_client on the served hub, whose registry starts empty, so the adapter router abstains)."""

from __future__ import annotations


def test_a_support_request_gets_the_support_assistants_answer(client):
    answer, card = client.predict("Where is my order 12345? It has not arrived.", 24, api_name="/chat")
    assert "**Answered by** the **Customer service** pipeline" in card, card
    assert "intent `track_order`" in card and "FAQ answer" in card
    assert "**Domain router** customer_service" in card
    assert "12345" in answer  # the FAQ answer, filled with the request's order number


def test_a_clinical_note_gets_its_codes_and_what_was_not_coded(client):
    note = "Patient denies chest pain. History of hypertension and type 2 diabetes. Has fever and cough."
    answer, card = client.predict(note, 24, api_name="/chat")
    assert "**Answered by** the **Medical coding** pipeline" in card, card
    assert "**I10**" in answer and "**E11.9**" in answer and "**R50.9**" in answer
    assert 'Not coded: "chest pain" (negated)' in answer  # a denied finding is listed, not coded


def test_a_finance_question_gets_the_advisors_grounded_answer(client):
    answer, card = client.predict("What does the RSI of KO tell me?", 24, api_name="/chat")
    assert "**Answered by** the **Finance** pipeline" in card, card
    assert "KO" in answer and "RSI" in answer
    assert "not personal financial advice" in answer  # the advisor's disclaimer


def test_a_ticker_question_that_reads_everyday_reaches_the_advisor(client):
    """Its exemplars alone leave "How is SPY doing right now?" to the base; the ticker claims it."""
    answer, card = client.predict("How is SPY doing right now?", 24, api_name="/chat")
    assert "**Answered by** the **Finance** pipeline" in card, card
    assert "finance (it names a ticker or a glossary term; closest exemplars: general)" in card, card
    assert "SPY" in answer


def test_a_request_for_a_person_is_handed_over_by_the_support_pipeline(client):
    """Its exemplars alone leave "can I speak to a real person" to the base; the request for a person claims
    it, and the support assistant hands over."""
    answer, card = client.predict("can I speak to a real person", 24, api_name="/chat")
    assert "**Answered by** the **Customer service** pipeline" in card, card
    assert "customer_service (it asks to speak to a person; closest exemplars: general)" in card, card
    assert "handed over to a person, requested" in card and "human agent" in answer, (answer, card)


def test_an_everyday_question_is_left_to_the_base(client):
    """(No test adapter covers time zones, so the adapter router abstains too.)"""
    answer, card = client.predict("What time zone is Tokyo in?", 16, api_name="/chat")
    assert "**Domain router** none (general request)" in card, card
    assert "pipeline" not in card.split("\n")[0] and answer


def test_an_industrys_own_adapter_answers_through_its_pipeline():
    from apps.hub_pipelines import pipeline_of_adapter

    assert pipeline_of_adapter("finance") == "finance"  # a finance@N with exemplars still gets the disclaimer
    assert pipeline_of_adapter("customer_service") == "customer_service"
    assert pipeline_of_adapter("cooking") is None and pipeline_of_adapter(None) is None


def test_the_support_assistant_replays_the_conversations_earlier_support_messages():
    """A conversation whose session the hub does not hold: its earlier support messages are replayed."""
    from apps.hub_pipelines import customer_service_answer, earlier_messages
    from domains.routing import load_domain_router

    said = ["I want to cancel order 4471923", "What is the capital of France?"]
    earlier = earlier_messages("customer_service", said, load_domain_router())
    assert earlier == ["I want to cancel order 4471923"]  # the everyday question is not replayed
    answer, detail = customer_service_answer("ok where is my order then", earlier)
    assert "4471923" in answer and "after 1 earlier support message" in detail
    alone, _ = customer_service_answer("ok where is my order then")
    assert "4471923" not in alone


def test_the_hub_continues_a_conversations_support_session_instead_of_replaying_it():
    """The session that answered a conversation's last support message answers its next one, also after an
    everyday question in between; taken sessions leave the store, the oldest go beyond its limit."""
    from apps.hub_pipelines import SUPPORT_SESSIONS, SupportSessions, pipeline_answer
    from domains.routing import load_domain_router

    router = load_domain_router()
    first = "I want to cancel order 5512034"
    pipeline_answer("customer_service", first, [], router)
    said = [f"  {first} ", "What is the capital of France?"]  # the chat history keeps what was typed
    kept = len(SUPPORT_SESSIONS)
    answer, detail = pipeline_answer("customer_service", "ok where is my order then", said, router)
    assert "5512034" in answer, answer
    assert "continuing this conversation's support session (1 earlier message(s))" in detail, detail
    assert len(SUPPORT_SESSIONS) == kept  # taken and kept again under the longer conversation
    assert SUPPORT_SESSIONS.take([*said, "ok where is my order then"]) is not None
    assert SUPPORT_SESSIONS.take([*said, "ok where is my order then"]) is None  # taken once
    small = SupportSessions(limit=2)
    for name in ("a", "b", "c"):
        small.keep([name], name)
    assert len(small) == 2 and small.take(["a"]) is None and small.take(["c", "d"]) == "c"

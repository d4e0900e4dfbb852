"""A conversation through gradio_client on the served hub, each test on a page of its own (its own session
state): a handover holds until "New conversation", and "New conversation" clicked while an answer is being
written gives a clean conversation (the answer in progress does not write the old one back)."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def page_client(hub_server):
    """A gradio_client of its own: a fresh page's session state on the served hub."""
    from gradio_client import Client

    return Client(hub_server, verbose=False)


def text_of(message: dict) -> str:
    """A chat message's text (the client gives message parts: [{"type": "text", "text": ...}])."""
    content = message["content"]
    return "".join(p.get("text", "") for p in content) if isinstance(content, list) else content


def wait_for(condition, what: str, timeout: float = 240) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_handover_holds_until_a_new_conversation(page_client):
    from domains.customer_service.session import prompts

    chat, _, _, _, _, banner = page_client.predict(
        "Let me talk to a real person please.", [], False, api_name="/cs_respond"
    )
    assert "Handed over to a human agent" in str(banner) and "requested" in str(banner)
    chat, _, intent, state, faq, banner = page_client.predict(
        "Where is my order 1234567?", chat, False, api_name="/cs_respond"
    )
    assert "Handed over to a human agent" in str(banner) and "requested" in str(banner)  # still shown
    assert text_of(chat[-1]) == prompts()["handover"]["after"] and "**answer from** handover" in intent
    assert any("1234567" in str(row[1]) for row in state["data"])  # the agent sees the order number
    assert not faq["data"]
    page_client.predict(api_name="/cs_reset")
    chat, _, intent, _, faq, banner = page_client.predict(
        "Where is my order 1234567?", [], False, api_name="/cs_respond"
    )
    assert "Handed over" not in str(banner) and "**answer from** faq" in intent and "1234567" in str(chat)


def test_customer_service_new_conversation_during_a_reply_starts_clean(page_client):
    """A first unsure turn (the model writes), reset while it streams, then another unsure turn: in a clean
    conversation that is the first unanswered turn (a question back), not the second (a handover)."""
    job = page_client.submit("Can you recommend a good umbrella?", [], True, api_name="/cs_respond")
    wait_for(lambda: len(job.outputs()) >= 2 or job.done(), "the reply to stream")
    assert not job.done(), "the reply was over before the reset; it must be in progress for this test"
    page_client.predict(api_name="/cs_reset")  # the reply stops: its event may end before this returns
    job.result(timeout=300)
    chat, _, intent, _, _, banner = page_client.predict(
        "Can you recommend a good umbrella?", [], False, api_name="/cs_respond"
    )
    assert "**answer from** clarify" in intent and "Handed over" not in str(banner), (intent, banner)


def test_finance_new_conversation_during_an_answer_starts_clean(page_client):
    """The advisor drafts with the model (seconds); a reset meanwhile must not bring back its dialog state."""
    from gradio_client.utils import Status

    job = page_client.submit(
        "I have $5,000 to invest for 10 years. What is an index fund?",
        [],
        True,
        False,
        api_name="/finance_ask",
    )
    wait_for(lambda: job.status().code == Status.PROCESSING or job.done(), "the answer to start")
    assert not job.done(), "the answer was over before the reset; it must be in progress for this test"
    page_client.predict(api_name="/finance_reset")
    job.result(timeout=300)
    _, _, state, _, _ = page_client.predict(
        "What is an index fund?", [], False, False, api_name="/finance_ask"
    )
    assert state["turns"] == 1 and state.get("amount") is None and "5000" not in str(state), state


def test_a_session_new_conversation_ended_is_not_continued():
    """A reply that wrote back just after "New conversation" leaves the ended session (and its chat) on the
    page: the next message starts a new session and an empty chat instead of going on with them."""
    from apps.customer_service import busy, reset, respond
    from domains.customer_service.session import CustomerServiceSession

    old = CustomerServiceSession(generate=False)
    first = old.respond("Can you recommend a good umbrella?")  # one unanswered turn
    chat = [{"role": "user", "content": first.user}, {"role": "assistant", "content": first.reply}]
    reset(old)
    assert old.ended
    _, _, session, cleared = busy("Can you recommend a good umbrella?", chat, old, False)
    assert session is not old and not session.ended and cleared == []
    *_, (chat, _, session, intent, _, _, banner) = respond(
        "Can you recommend a good umbrella?", [], old, False
    )
    assert session is not old and len(session.history) == 1 and len(chat) == 2  # an API caller's reply too
    assert "**answer from** clarify" in intent and not banner["visible"]  # not the second failure in a row

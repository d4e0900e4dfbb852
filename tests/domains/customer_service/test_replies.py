"""Generated replies on the real base: the cached-prefix engine matches plain generation, adapters serve."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from adapters import AdapterManager, GenerationRequest, Registry
from adapters.errors import AdapterNotFoundError
from core_model.errors import DSuiteError
from core_model.generation import GenerationSettings, generate
from domains.customer_service import replies
from domains.customer_service.replies import REPETITION_PENALTY, reply_engine, reply_manager, write_reply
from domains.customer_service.session import CustomerServiceSession, prompts

UNANSWERED = "Can you recommend a good umbrella?"  # no FAQ answer fits, no escalation: the model writes


def _messages(text: str = UNANSWERED) -> list[dict]:
    return [{"role": "system", "content": prompts()["system"]}, {"role": "user", "content": text}]


@pytest.fixture
def tmp_adapters(tmp_path, monkeypatch):
    """An empty adapter registry for this test (the shipped adapter installs itself there)."""
    monkeypatch.setenv("DSUITE_ADAPTERS", str(tmp_path / "adapters"))
    reply_manager.cache_clear()
    yield tmp_path / "adapters"
    if reply_manager.cache_info().currsize:  # the test made the manager: close it
        reply_manager(None).close()
    reply_manager.cache_clear()


def test_engine_reply_with_cached_system_prompt_equals_plain_generation(embedded_base):
    messages = _messages()
    reply = write_reply(messages, max_new_tokens=24, precision="fp32")
    settings = GenerationSettings(max_new_tokens=24, repetition_penalty=REPETITION_PENALTY)
    expected = generate(embedded_base, messages, settings).strip()
    assert reply == expected and reply
    engine = reply_engine(None, "fp32", messages[0]["content"]).engine
    system_ids = engine.chat_prefix_ids(messages[0]["content"])
    entry, cached = engine.prefixes.lookup(engine.chat_ids(UNANSWERED, messages[0]["content"]))
    assert entry is not None and cached == len(system_ids)  # only the turn after the system prompt runs


def test_session_writes_a_reply_when_no_faq_fits():
    session = CustomerServiceSession(generate=True)
    turn = session.respond(UNANSWERED)
    assert turn.source == "generated" and turn.reply.strip()
    assert turn.reply == write_reply(_messages(), max_new_tokens=session.max_new_tokens)  # int8, shared
    engines = dict(replies._ENGINES)
    CustomerServiceSession(generate=True).respond(UNANSWERED)
    assert replies._ENGINES == engines  # a second conversation reuses the engine


def test_a_retired_engine_ends_its_scheduler_thread_once_idle(monkeypatch):
    monkeypatch.setattr(replies, "MAX_ENGINES", 1)
    first = reply_engine(None, "fp32", "You are terse.")
    thread = first.scheduler._thread
    assert write_reply(_messages(), max_new_tokens=4, precision="fp32") is not None  # another engine
    thread.join(30)
    assert not thread.is_alive() and list(replies._ENGINES) == [(None, "fp32", prompts()["system"])]
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"}]
    assert "".join(first.stream(messages, 4))  # a late client of the retired engine is still served


def test_the_session_streams_a_generated_reply_and_keeps_only_the_finished_turn():
    session = CustomerServiceSession(generate=True, max_new_tokens=24)
    turns = list(session.respond_stream(UNANSWERED))
    assert len(turns) > 2 and all(t.source == "generated" for t in turns)
    replies = [t.reply for t in turns]
    assert all(later.startswith(earlier) for earlier, later in zip(replies, replies[1:-1], strict=False))
    assert replies[-1] == replies[-2].strip() and session.history == [turns[-1]]
    faq = list(session.respond_stream("How do I change my delivery address?"))
    assert len(faq) == 1 and faq[0].source == "faq"  # any other reply comes once


def test_a_stopped_reply_frees_its_slot_and_the_turn_keeps_what_was_shown():
    session = CustomerServiceSession(generate=True, max_new_tokens=96)
    stream = session.respond_stream(UNANSWERED)
    shown = [next(stream) for _ in range(3)]
    scheduler = reply_engine(None, session.precision, prompts()["system"]).scheduler
    steps = scheduler.steps
    stream.close()  # what Gradio does on Stop or a closed page
    assert session.history == [dataclasses.replace(shown[-1], reply=shown[-1].reply.strip(), stopped=True)]
    deadline = time.monotonic() + 30
    while (scheduler.active or scheduler.waiting) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not scheduler.active and scheduler.steps - steps <= 3  # not decoding the other 90-odd tokens
    assert session.messages("and?")[-2] == {"role": "assistant", "content": session.history[0].reply}
    assert session.respond("Thanks, and do you sell raincoats?").reply  # the conversation goes on


def test_stop_reply_ends_the_reply_at_the_next_token_and_the_turn_keeps_it():
    session = CustomerServiceSession(generate=True, max_new_tokens=96)
    turns = []
    for turn in session.respond_stream(UNANSWERED):
        turns.append(turn)
        if len(turns) == 3:
            session.stop_reply()  # as the app's Stop button does, from another thread
    assert len(turns) == 4 and turns[-1].reply == turns[2].reply.strip() and session.history == [turns[-1]]
    assert turns[-1].stopped and not any(t.stopped for t in turns[:-1])
    scheduler = reply_engine(None, session.precision, prompts()["system"]).scheduler
    deadline = time.monotonic() + 30
    while scheduler.active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not scheduler.active
    assert session.respond("How do I change my delivery address?").source == "faq"  # no repeated failure
    session.stop_reply()  # pressed while the next message is decided, before its reply starts
    early = session.respond(UNANSWERED)
    assert early.stopped and early.reply == "" and early.source == "generated"
    session.respond("How do I change my delivery address?")  # an answered turn in between
    later = list(session.respond_stream("And a warm scarf?"))
    assert later[-1].source == "generated" and len(later) > 4  # the next reply is not stopped


def test_conversations_writing_at_once_get_the_replies_they_get_alone():
    texts = [UNANSWERED, "Do you sell gift cards for birthdays?", "Is the shop open on Sunday?"]
    alone = [write_reply(_messages(t), max_new_tokens=20) for t in texts]
    together: dict[int, str] = {}

    def converse(i: int) -> None:
        together[i] = write_reply(_messages(texts[i]), max_new_tokens=20)

    threads = [threading.Thread(target=converse, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [together.get(i) for i in range(len(texts))] == alone


def test_adapter_replies_come_from_the_adapter_manager(embedded_base, tmp_adapters):
    messages = _messages()
    reply = write_reply(messages, max_new_tokens=16, adapter="customer_service")
    direct = AdapterManager(embedded_base, Registry(tmp_adapters))
    try:
        request = GenerationRequest(
            messages=messages,
            adapter="customer_service",
            max_new_tokens=16,
            repetition_penalty=REPETITION_PENALTY,
        )
        assert reply == direct.generate([request])[0].text.strip()
    finally:
        direct.close()
    assert reply != write_reply(messages, max_new_tokens=16, precision="fp32")  # the adapter shows


def test_bad_reply_settings_fail_when_the_session_starts(tmp_adapters):
    with pytest.raises(DSuiteError, match="fp32, int8, int4"):
        CustomerServiceSession(precision="fp16")
    with pytest.raises(DSuiteError, match="--generate"):
        CustomerServiceSession(generate=False, adapter="customer_service")
    with pytest.raises(AdapterNotFoundError, match="dsuite adapters train"):
        CustomerServiceSession(adapter="no_such_adapter")
    with pytest.raises(DSuiteError, match="start with the system turn"):
        write_reply([{"role": "user", "content": "hi"}])

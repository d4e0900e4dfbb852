"""Customer service: the support chat with its dialog state, intent and confidence, FAQ sources, escalation.

Each browser session has its own ``CustomerServiceSession`` in ``gr.State``; every turn updates the state
table, the intent line, the FAQ sources used, and shows an escalation banner with its reason from the turn
the assistant hands the conversation to a human until "New conversation". "New conversation" ends the session,
also while a reply is being written: that reply stops and nothing of it comes back to the page.
Pure handlers and a module-level ``demo``.
"""

from __future__ import annotations

import logging

import gradio as gr
import pandas as pd

from apps.ui import text_problem, user_error
from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

TITLE = "Customer service"
STATE_COLUMNS = ["slot", "value"]
FAQ_COLUMNS = ["faq", "question", "intent", "score"]
EXAMPLES = [
    "I want to cancel order 1234567, it has not shipped yet.",
    "How do I get a refund for a damaged item?",
    "Let me talk to a real person please.",
]


def new_session(generate: bool):
    """A fresh conversation; with ``generate`` the model writes a reply when no FAQ answer fits."""
    from domains import get_domain

    return get_domain("customer_service").pipeline["session"](generate=generate)


def live_session(session, generate: bool):
    """The conversation's session, or a new one when there is none yet or "New conversation" ended it (a reply
    that was being written then may have put the ended session back just after the reset)."""
    return new_session(generate) if session is None or session.ended else session


def intent_line(turn) -> str:
    """Markdown: the turn's intent, its confidence and where the answer came from (and whether Stop cut the
    reply short, so a short answer is not mistaken for the model's whole one)."""
    stopped = " · **stopped** at your request" if turn.stopped else ""
    return (f"**Intent** `{turn.intent}` · **confidence** {turn.confidence:.2f} · "
            f"**answer from** {turn.source}{stopped}")


def escalation_banner(turn) -> dict:
    """The banner's update: shown with the reason while the conversation is handed over (every turn from the
    handover on carries its escalation), hidden otherwise."""
    if turn.escalation is None:
        return gr.update(value="", visible=False)
    reason = turn.escalation.reason.replace("_", " ")
    text = f"### Handed over to a human agent\n**Reason:** {reason} — {turn.escalation.detail}"
    return gr.update(value=text, visible=True)


def turn_view(turn, history: list[dict] | None, session) -> tuple:
    """The outputs for one turn as it stands: ``(chat history, cleared textbox, session, intent line,
    state table, FAQ sources, escalation banner)``."""
    history = list(history or []) + [
        {"role": "user", "content": turn.user},
        {"role": "assistant", "content": turn.reply},
    ]
    state = pd.DataFrame([[slot, str(value)] for slot, value in turn.state.items()], columns=STATE_COLUMNS)
    faq = pd.DataFrame([[hit.id, hit.question, hit.intent, round(hit.score, 3)] for hit in turn.faq_sources],
                       columns=FAQ_COLUMNS)
    return history, "", session, intent_line(turn), state, faq, escalation_banner(turn)


def respond(message: str, history: list[dict] | None, session, generate: bool = True):
    """One customer turn, streamed: yields the outputs of :func:`turn_view` each time a generated reply
    grows by a token (once for any other reply); the last yield is the finished turn. Only the first yield
    clears the message box. Once "New conversation" ends the session, nothing more of this turn is yielded.

    Raises:
        gr.Error: an empty or over-long message, or a domain error (e.g. no intent model trained) with what
            to do.
    """
    problem = text_problem(message)
    if problem:  # the box's validator does this too, but an API call skips it
        raise user_error(problem)
    try:
        session = live_session(session, generate)
        session.generate = generate  # the box's current value, also for an API caller's live session
        turns = session.respond_stream(message.strip())
        try:
            for i, turn in enumerate(turns):
                view = turn_view(turn, history, session)
                if session.ended:  # New conversation: the page already shows the new one
                    return
                # clear the message box once: later updates must not wipe what the customer types meanwhile
                yield view if i == 0 else (view[0], gr.update(), *view[2:])
        finally:  # Stop, or a closed page: the session keeps the reply as far as it was shown
            turns.close()
    except DSuiteError as exc:
        raise user_error(exc) from exc


def check_message(message: str | None, *others):
    """Gradio validator: an empty or over-long message is refused at the box itself, before anything runs
    (an error raised inside the reply would leave the buttons as they were during it). The event's other
    inputs (``others``: the chat, the session, the checkbox) are always valid."""
    problem = text_problem(message)
    verdict = gr.validate(problem is None, problem or "")
    return (verdict, *(gr.validate(True, "") for _ in others)) if others else verdict


def busy(_message: str | None = None, history: list[dict] | None = None, session=None, generate: bool = True):
    """While a reply streams: Send off (Gradio drops a click on a busy event), Stop on. Also starts the
    conversation's session when there is none yet, so that Stop has the session to stop on the very first
    reply too (a session made inside :func:`respond` reaches the page's state only with the reply); the chat
    is cleared when the session found is one "New conversation" ended (its reply wrote back just after it).

    Returns:
        ``(Send update, Stop update, session, chat history)``.
    """
    try:
        fresh = live_session(session, generate)
    except DSuiteError as exc:
        raise user_error(exc) from exc
    chat = [] if session is not None and fresh is not session else gr.skip()
    return gr.update(interactive=False), gr.update(interactive=True), fresh, chat


def idle():
    """After a turn, also a failed or stopped one: Send on, Stop off."""
    return gr.update(interactive=True), gr.update(interactive=False)


def stop_reply(session) -> None:
    """Stop: the reply being written ends at its next token and the turn keeps what was shown."""
    if session is not None:
        session.stop_reply()


def reset(session=None):
    """Start a new conversation: the old session is ended, which also stops a reply being written for it (the
    event streaming that reply then leaves the page to the new conversation)."""
    if session is not None:
        session.end()
    return ([], None, "", pd.DataFrame(columns=STATE_COLUMNS), pd.DataFrame(columns=FAQ_COLUMNS),
            gr.update(value="", visible=False))


with gr.Blocks(title=f"DomainSuite — {TITLE}") as demo:
    gr.Markdown(f"## {TITLE}\nThe support assistant answers from the FAQ, tracks what you asked for, and "
                "hands over to a human when you ask, when it is unsure, or when things go wrong.")
    session_state = gr.State(None)
    banner = gr.Markdown(visible=False, elem_id="cs-escalation")
    with gr.Row():
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Support chat", height=380, elem_id="cs-chat")
            with gr.Row():
                message = gr.Textbox(placeholder="Describe your issue...", show_label=False, scale=4,
                                     elem_id="cs-message")
                send = gr.Button("Send", variant="primary", scale=1, elem_id="cs-send")
                stop = gr.Button("Stop", variant="stop", scale=1, interactive=False, elem_id="cs-stop")
            with gr.Row():
                generate = gr.Checkbox(value=True, label="Write a reply with the model when no FAQ fits")
                clear = gr.Button("New conversation", size="sm")
            gr.Examples(EXAMPLES, inputs=message)
        with gr.Column(scale=2):
            intent = gr.Markdown(elem_id="cs-intent")
            state_view = gr.Dataframe(headers=STATE_COLUMNS, label="Dialog state", interactive=False,
                                      elem_id="cs-state")
            faq_view = gr.Dataframe(headers=FAQ_COLUMNS, label="FAQ sources used", interactive=False,
                                    wrap=True, elem_id="cs-faq")

    inputs = [message, chat, session_state, generate]
    outputs = [chat, message, session_state, intent, state_view, faq_view, banner]
    buttons = [send, stop]
    triggers = ((send.click, {"api_name": "cs_respond"}), (message.submit, {"api_visibility": "private"}))
    for trigger, api in triggers:
        start = trigger(busy, [message, chat, session_state, generate], [*buttons, session_state, chat],
                        validator=check_message, api_visibility="private")
        reply = start.success(respond, inputs, outputs, **api)
        reply.then(idle, None, buttons, api_visibility="private")
        reply.failure(idle, None, buttons, api_visibility="private")  # Gradio skips .then after an error
    # Stop asks the session to end the reply (the turn keeps what was shown, the engine frees the slot); the
    # reply's .then above turns the buttons back. Not Gradio's `cancels`: in the hub a cancelled event marks
    # every output of this tab with an error badge.
    stop.click(stop_reply, session_state, None, queue=False, api_visibility="private")
    # New conversation ends the session, which stops a reply in progress and keeps it from writing back
    clear.click(reset, session_state, [chat, session_state, intent, state_view, faq_view, banner],
                api_name="cs_reset")

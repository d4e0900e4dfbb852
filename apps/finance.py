"""Finance advisory: the advisor chat with its dialog state, cited terms, a live price chart, the disclaimer.

Each browser session has its own ``FinanceAdvisor`` (multi-turn dialog state) and its own chart, kept in
``gr.State``. The chart advances one bar per second from the selected feed while the page is open.
Pure handlers and a module-level ``demo``.
"""

from __future__ import annotations

import logging

import gradio as gr
import pandas as pd

from apps.market_chart import FEED_KINDS, LiveChart, replay_symbols, start_chart
from apps.ui import text_problem, user_error
from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

TITLE = "Finance"
TERM_COLUMNS = ["term", "definition", "source"]
TICK_SECONDS = 1.0
EXAMPLES = [
    "I have $5,000 to invest for 10 years with moderate risk. What is an index fund?",
    "What is the P/E ratio of KO telling me?",
    "Can you guarantee a 20% return?",
]


def new_advisor(draft_with_model: bool, retrieve: bool):
    """A fresh advisor: the finance adapter drafts (``model``) or cited facts only (``extractive``); with
    ``retrieve`` it also searches the glossary index for related terms."""
    from domains.finance.advisor import FinanceAdvisor

    return FinanceAdvisor(mode="model" if draft_with_model else "extractive", use_retrieval=retrieve)


def advisor_for(advisor, draft_with_model: bool, retrieve: bool):
    """The conversation's advisor with the settings now chosen: the same one, or (first turn, or settings
    changed) a new one that keeps the conversation's dialog state and history."""
    mode = "model" if draft_with_model else "extractive"
    if advisor is not None and (advisor.mode, advisor.use_retrieval) == (mode, retrieve):
        return advisor
    fresh = new_advisor(draft_with_model, retrieve)
    if advisor is not None:  # a changed setting applies from this turn on; what was said stays known
        fresh.state, fresh.history = advisor.state, advisor.history
    return fresh


def ask(message: str, history: list[dict] | None, advisor, draft_with_model: bool = True,
        retrieve: bool = True, conversation: dict | None = None):
    """One advisor turn (the advisor is created on the first turn with the chosen settings).

    ``conversation``: the page's conversation counter (``{"number": n}``, which :func:`reset` counts up);
    when "New conversation" was clicked while the answer was being written, the answer is dropped and
    nothing on the page changes.

    Returns:
        ``(chat history, cleared textbox, advisor, dialog state, cited terms, answer details)``.

    Raises:
        gr.Error: an empty or over-long question, or a domain error with what to fix.
    """
    problem = text_problem(message, "question", "the advisor")
    if problem:
        raise user_error(problem)
    number = None if conversation is None else conversation["number"]
    try:
        advisor = advisor_for(advisor, draft_with_model, retrieve)
        answer = advisor.ask(message.strip())
    except DSuiteError as exc:
        raise user_error(exc) from exc
    if conversation is not None and conversation["number"] != number:  # the old one must not come back
        return tuple(gr.skip() for _ in range(6))
    history = list(history or []) + [
        {"role": "user", "content": message.strip()},
        {"role": "assistant", "content": answer.text},
    ]
    terms = pd.DataFrame([[t["term"], t["definition"], t.get("source", "")] for t in answer.cited_terms],
                         columns=TERM_COLUMNS)
    details = {"answered_by": answer.answered_by, "changed": answer.changed, "refused": answer.refused,
               "dropped_sentences": answer.dropped, "snapshots": answer.snapshots}
    return history, "", advisor, answer.state, terms, details


def reset(conversation: dict | None = None):
    """Forget the conversation and the dialog state; ``conversation`` (the counter) counts up, so an answer
    still being written for the old conversation is dropped instead of bringing its advisor back."""
    if conversation is not None:
        conversation["number"] += 1
    return [], None, {}, pd.DataFrame(columns=TERM_COLUMNS), {}


def open_chart(symbol: str, kind: str) -> tuple[pd.DataFrame, str, LiveChart]:
    """Start the live chart of ``symbol`` from the ``replay`` or ``simulated`` feed.

    Raises:
        gr.Error: an unknown symbol for replay, or an unknown feed kind.
    """
    try:
        chart = start_chart(symbol, kind)
    except DSuiteError as exc:
        raise user_error(exc) from exc
    return chart.frame(), chart.facts(), chart


def tick(chart: LiveChart | None) -> tuple[pd.DataFrame, str, LiveChart | None]:
    """Advance the chart by one bar (nothing to do before a chart is opened)."""
    if chart is None:
        return gr.skip(), gr.skip(), None
    chart.advance()
    return chart.frame(), chart.facts(), chart


def _disclaimer() -> str:
    from domains.finance.policy import disclaimer

    return disclaimer()


def _default_symbol() -> tuple[list[str], str, str]:
    symbols = replay_symbols()
    if symbols:
        return symbols, ("KO" if "KO" in symbols else symbols[0]), "replay"
    return ["SIM"], "SIM", "simulated"


with gr.Blocks(title=f"DomainSuite — {TITLE}") as demo:
    gr.Markdown(f"## {TITLE} advisory\nAsk about terms, products and your plan; the advisor keeps track of "
                "your goal, horizon, risk and amount, cites definitions and market figures, and never "
                "invents numbers.")
    gr.Markdown(f"> {_disclaimer()}", elem_id="finance-disclaimer")
    advisor_state = gr.State(None)
    conversation_state = gr.State({"number": 0})  # each page its own copy; New conversation counts up
    chart_state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=3):
            chat = gr.Chatbot(label="Advisor", height=380, elem_id="finance-chat")
            with gr.Row():
                question = gr.Textbox(placeholder="Ask the advisor...", show_label=False, scale=4,
                                      elem_id="finance-question")
                send = gr.Button("Ask", variant="primary", scale=1, elem_id="finance-send")
            with gr.Row():
                draft = gr.Checkbox(value=True, label="Draft advice with the finance adapter")
                retrieve = gr.Checkbox(value=True, label="Search the glossary for related terms")
                clear = gr.Button("New conversation", size="sm")
            gr.Examples(EXAMPLES, inputs=question)
        with gr.Column(scale=2):
            state_view = gr.JSON(label="Dialog state", elem_id="finance-state")
            terms_view = gr.Dataframe(headers=TERM_COLUMNS, label="Terms and definitions", interactive=False,
                                      wrap=True, elem_id="finance-terms")
            with gr.Accordion("Answer details", open=False):
                details_view = gr.JSON(label="Grounding and sources")
    gr.Markdown("### Live market")
    symbols, symbol_default, kind_default = _default_symbol()
    with gr.Row():
        symbol = gr.Dropdown(symbols, value=symbol_default, allow_custom_value=True, label="Symbol")
        kind = gr.Radio(list(FEED_KINDS), value=kind_default, label="Feed")
        show = gr.Button("Show live chart", elem_id="finance-chart-btn")
        pause = gr.Button("Pause", size="sm")
    plot = gr.LinePlot(x="date", y="price", color="series", title="Price and indicators", height=300,
                       elem_id="finance-chart")
    facts = gr.Markdown(elem_id="finance-facts")
    timer = gr.Timer(TICK_SECONDS, active=False)  # ticks only once a chart is shown, until paused

    inputs = [question, chat, advisor_state, draft, retrieve, conversation_state]
    outputs = [chat, question, advisor_state, state_view, terms_view, details_view]
    send.click(ask, inputs, outputs, api_name="finance_ask")
    question.submit(ask, inputs, outputs, api_visibility="private")
    clear.click(reset, conversation_state, [chat, advisor_state, state_view, terms_view, details_view],
                api_name="finance_reset")
    show.click(open_chart, [symbol, kind], [plot, facts, chart_state], api_name="finance_chart").then(
        lambda: gr.Timer(active=True), None, timer, api_visibility="private")
    pause.click(lambda: gr.Timer(active=False), None, timer, api_visibility="private")
    timer.tick(tick, chart_state, [plot, facts, chart_state], api_name="finance_tick", show_progress="hidden")

"""The hub: the page `make run` opens. Free text is routed to the right adapter or industry pipeline.

A request goes first to the adapter router (adapters registered with exemplars, such as one trained on the
admin page); when it abstains, the domain router (``domains.routing``) decides whether the request is a
support request, a clinical note or a finance question, and that industry's pipeline answers it
(``hub_pipelines``); anything else is answered by the base, streamed. Beside the answer: who answered
(``name@version``, a pipeline, or the bare base), the routers' confidences and runners-up, and the latency.
Tabs lead to each industry app and the adapter admin. Pure handlers (``route_request``, ``respond``) and a
module-level ``demo``; the model loads on the first request, so importing this module is cheap.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import gradio as gr

from apps import services
from apps.hub_pipelines import TABS, pipeline_answer, pipeline_of_adapter
from apps.ui import MAX_MESSAGE_CHARS, text_problem, user_error
from core_model.errors import DSuiteError
from domains.routing import CLAIM_REASONS

logger = logging.getLogger(__name__)

# one request per route: the base, the finance, support and coding pipelines (asked to code a note, the bare
# base had invented codes, "CXP-1: Chest Pain", and coded the denied chest pain)
EXAMPLES = [
    "What is the capital of France?",
    "What is a price-to-earnings ratio?",
    "Where is my order 12345? It has not arrived.",
    "Patient denies chest pain. History of hypertension and type 2 diabetes; presents with fever and cough.",
]
PIPELINE_HINT = (
    "Support requests, clinical notes and finance questions are answered here by their industry's pipeline; "
    "the **Customer service**, **Medical coding** and **Finance** tabs also show the dialog state, code "
    "batches of notes and chart market feeds."
)
# the tabs after the routed chat: one module per app, each with TITLE and a module-level `demo`
APP_MODULES = ("apps.medical", "apps.finance", "apps.customer_service", "apps.admin")


@dataclass
class Route:
    """Where one request goes: the adapter (``None`` = the base), why, and the alternatives."""

    adapter: str | None
    confidence: float
    runners_up: list[tuple[str, float]] = field(default_factory=list)
    best: str | None = None  # the closest adapter, also when the router abstains
    domain: object | None = None  # the domain router's ``DomainRoute`` when the adapter router abstained
    pipeline: str | None = None  # the industry whose pipeline answers (``hub_pipelines.TABS``), if any


def route_request(text: str) -> Route:
    """Ask the router which adapter should answer ``text`` (``adapter=None``: the base answers)."""
    result = services.router().route(text)
    return Route(result.adapter, float(result.confidence),
                 [(str(name), float(score)) for name, score in result.runners_up], result.best)


def _messages(message: str, history: list[dict] | None) -> list[dict]:
    messages = [
        {"role": turn["role"], "content": _text(turn["content"])}
        for turn in (history or [])
        if turn.get("role") in ("user", "assistant")
    ]
    messages.append({"role": "user", "content": message.strip()})
    return messages


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # Gradio 6 content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def route_card(route: Route, answered_by: str | None, first_token_s: float | None,
               total_s: float | None, pipeline_detail: str | None = None) -> str:
    """Markdown beside the answer: who answered, the routers' confidences and runners-up, the latency."""
    domain = route.domain
    if route.pipeline:
        who = f"the **{TABS[route.pipeline]}** pipeline"
        who += f" ({pipeline_detail})" if pipeline_detail else ""
        if route.adapter:
            who += f"; the router chose its adapter `{route.adapter}`"
    else:
        who = f"`{answered_by}`" if answered_by else "the base model (router abstained)"
        if not answered_by and route.best:
            who += f"; closest adapter `{route.best}`"
    lines = [f"**Answered by** {who}", f"**Router confidence** {route.confidence:.2f}"]
    if route.runners_up:
        ranked = ", ".join(f"`{name}` {score:.2f}" for name, score in route.runners_up)
        lines.append(f"**Runners-up** {ranked}")
    if domain is not None:
        label = domain.pipeline or "none (general request)"
        if domain.claimed:
            label += f" ({CLAIM_REASONS[domain.pipeline]}; closest exemplars: {domain.best})"
        ranked = ", ".join(f"`{name}` {score:.2f}" for name, score in domain.runners_up)
        lines.append(f"**Domain router** {label}, confidence {domain.confidence:.2f}"
                     + (f"; runners-up {ranked}" if ranked else ""))
    if total_s is not None:
        first = f" (first token {first_token_s:.2f} s)" if first_token_s is not None else ""
        lines.append(f"**Latency** {total_s:.2f} s{first}")
    else:
        lines.append("**Latency** generating...")
    return "\n\n".join(lines)


def message_problem(message: str | None) -> str | None:
    """What is wrong with a hub message (empty, too long), or None."""
    advice = "Shorten it, or use the industry tab for long documents."
    return text_problem(message, reader="the hub", advice=advice)


def check_message(message: str | None):
    """Gradio validator of the chat box: a bad message is refused there, before anything runs (an error raised
    inside the chat would leave its box disabled)."""
    problem = message_problem(message)
    return gr.validate(problem is None, problem or "")


def respond(message: str, history: list[dict] | None = None,
            max_new_tokens: int = 128) -> Iterator[tuple[str, str]]:
    """Route ``message``, stream the chosen adapter's answer, and report the route beside it.

    Yields:
        ``(answer so far, route card markdown)``.

    Raises:
        gr.Error: an empty or over-long message, or a routing/generation error, with what to do about it.
    """
    from adapters import GenerationRequest

    problem = message_problem(message)
    if problem:  # API callers; the page's validator refuses it before this runs
        raise user_error(problem)
    started = time.perf_counter()
    try:
        route = route_request(message)
        if route.adapter is None:
            route.domain = services.domain_router().route(message)
        # an industry's own adapter answers through its pipeline (the finance one with its grounding check
        # and disclaimer), also when a retrained version with exemplars is what the adapter router chose
        route.pipeline = route.domain.pipeline if route.domain else pipeline_of_adapter(route.adapter)
        if route.pipeline:
            yield "", route_card(route, None, None, None)
            said = [_text(t["content"]) for t in (history or []) if t.get("role") == "user"]
            answer, detail = pipeline_answer(route.pipeline, message.strip(), said, services.domain_router())
            total = time.perf_counter() - started
            logger.info("hub answered with the %s pipeline in %.2f s", route.pipeline, total)
            yield answer, route_card(route, None, total, total, detail)
            return
        answered_by = services.manager().resolve(route.adapter).key if route.adapter else None
        request = GenerationRequest(messages=_messages(message, history), adapter=answered_by,
                                    max_new_tokens=int(max_new_tokens))
        reply, first = "", None
        yield "", route_card(route, answered_by, None, None)
        for piece in services.manager().stream(request):
            first = first if first is not None else time.perf_counter() - started
            reply += piece
            yield reply.strip(), route_card(route, answered_by, first, None)
    except DSuiteError as exc:
        raise user_error(exc) from exc
    total = time.perf_counter() - started
    logger.info("hub answered with %s in %.2f s", answered_by or "base", total)
    yield reply.strip(), route_card(route, answered_by, first, total)


def build_hub() -> gr.Blocks:
    """The hub page: the routed chat, then one tab per industry app and the adapter admin."""
    apps = []
    for name in APP_MODULES:
        try:
            apps.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            logger.warning("app %s is not installed: its tab is left out", name)
    with gr.Blocks(title="DomainSuite") as hub:
        gr.Markdown(
            "# DomainSuite\nOne on-device language model with an expert adapter per domain. "
            "Everything runs locally and offline."
        )
        with gr.Tabs():
            with gr.Tab("Ask anything", id="hub"):
                card = gr.Markdown("Ask a question: the router picks the expert that answers.",
                                   elem_id="route-card", render=False)
                with gr.Row():
                    with gr.Column(scale=3):
                        gr.ChatInterface(
                            respond,
                            examples=[[text, 128] for text in EXAMPLES],
                            run_examples_on_click=False,
                            api_name="chat",
                            additional_inputs=[
                                gr.Slider(8, 512, value=128, step=8, label="Max new tokens", render=False,
                                          elem_id="hub-max-tokens")
                            ],
                            additional_outputs=[card],
                            validator=check_message,  # the message stays in the box, which the limit names
                            textbox=gr.Textbox(
                                placeholder=f"Ask anything (up to {MAX_MESSAGE_CHARS:,} characters)...",
                                show_label=False,
                                submit_btn=True,
                                stop_btn=True,
                                render=False,
                            ),
                        )
                    with gr.Column(scale=1, min_width=240):
                        gr.Markdown("### Route")
                        card.render()
                        gr.Markdown(PIPELINE_HINT, elem_id="hub-pipeline-hint")
            for module in apps:
                with gr.Tab(module.TITLE, id=module.__name__.rsplit(".", 1)[-1]):
                    module.demo.render()
    return hub


demo = build_hub()

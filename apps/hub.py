"""The hub: the page `make run` opens. For now a streaming chat with the base model.

Pure handlers (``respond``) and a module-level ``demo``; the model loads on the first request, so
importing this module is cheap. The apps issue grows it into the routed hub with tabs per industry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import gradio as gr

from core_model.generation import GenerationSettings, stream

BASE = os.environ.get("DSUITE_BASE") or None
EXAMPLES = ["What is the capital of France?", "Explain what a stock dividend is in one sentence."]


def _base():
    from core_model import load_base

    return load_base(BASE)


def respond(message: str, history: list[dict] | None = None, max_new_tokens: int = 256) -> Iterator[str]:
    """Stream the base model's reply to ``message`` given the chat ``history`` (Gradio messages)."""
    if not message or not message.strip():
        raise gr.Error("Type a message first: the message box is empty.")
    messages = [
        {"role": turn["role"], "content": _text(turn["content"])}
        for turn in (history or [])
        if turn.get("role") in ("user", "assistant")
    ]
    messages.append({"role": "user", "content": message.strip()})
    reply = ""
    for piece in stream(_base(), messages, GenerationSettings(max_new_tokens=int(max_new_tokens))):
        reply += piece
        yield reply.strip()


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # Gradio 6 content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


with gr.Blocks(title="DomainSuite") as demo:
    gr.Markdown("# DomainSuite\nA small on-device language model. Everything runs locally and offline.")
    gr.ChatInterface(
        respond,
        examples=[[text, 256] for text in EXAMPLES],
        run_examples_on_click=False,
        api_name="chat",
        additional_inputs=[gr.Slider(16, 512, value=256, step=16, label="Max new tokens", render=False)],
    )

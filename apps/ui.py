"""Small helpers every app shares: turning suite errors into messages the page shows."""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from core_model.errors import DSuiteError


def user_error(
    exc: DSuiteError | str, upload: Path | None = None, controls: dict[str, str] | None = None
) -> gr.Error:
    """A Gradio error popup carrying a suite error's message (what was given, expected, how to fix), in the
    page's words: ``upload``, the server's copy of an uploaded file, is named by its file name (the user has
    no access to the server's temporary folder); ``controls`` maps command-line flags (``--id-col``) to the
    page's controls ("the Id column box") or other command-line advice to what the page offers instead."""
    message = str(exc)
    if upload is not None:
        message = message.replace(str(upload), upload.name)
    for said, shown in (controls or {}).items():
        message = re.sub(rf"{re.escape(said)}(?![\w-])", shown, message)
    return gr.Error(message, print_exception=False)


# The longest message or question a chat box takes: a longer one would not fit the reply engine's 2,048
# tokens, and 20,000 characters kept a core busy for 24 s.
MAX_MESSAGE_CHARS = 4000


def text_problem(
    text: str | None, what: str = "message", reader: str = "the assistant", advice: str = "Shorten it."
) -> str | None:
    """What is wrong with a chat box's ``text`` (empty, or over ``MAX_MESSAGE_CHARS``), or None; the same
    words for the box's validator and for an API call that skips it."""
    if not text or not text.strip():
        return f"Type a {what} first: the message box is empty."
    if len(text) > MAX_MESSAGE_CHARS:
        return f"The {what} has {len(text)} characters; {reader} reads at most {MAX_MESSAGE_CHARS}. {advice}"
    return None

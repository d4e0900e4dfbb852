"""Small helpers every app shares: turning suite errors into messages the page shows."""

from __future__ import annotations

import gradio as gr

from core_model.errors import DSuiteError


def user_error(exc: DSuiteError | str) -> gr.Error:
    """A Gradio error popup carrying a suite error's message (what was given, expected, how to fix)."""
    return gr.Error(str(exc), print_exception=False)

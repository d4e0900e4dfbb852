"""Errors every layer of the suite raises for bad input.

Each error message says what was given, what was expected and how to fix it. The CLI turns any
``DSuiteError`` into a one-paragraph message and exit code 2 instead of a traceback.
"""

from __future__ import annotations


class DSuiteError(Exception):
    """Base class of the suite's user-facing errors (bad input, missing files, refused loads)."""

    exit_code = 2


class BaseModelError(DSuiteError):
    """A base model folder or the embedded base cannot be found or loaded."""

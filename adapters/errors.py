"""Errors of the adapters package (all are ``DSuiteError``: the CLI exits with code 2 and the message)."""

from __future__ import annotations

from core_model.errors import DSuiteError


class AdapterNotFoundError(DSuiteError):
    """No adapter, version or alias of that name in the registry."""


class AdapterIntegrityError(DSuiteError):
    """The adapter's files do not match the content hash recorded when it was registered."""


class AdapterBaseMismatchError(DSuiteError):
    """The adapter was trained on a different base model than the one it is being loaded onto."""

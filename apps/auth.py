"""Optional login for the served apps: ``--auth user:password`` or the ``DSUITE_AUTH`` environment variable.

Several accounts are separated by commas (``alice:pw1,bob:pw2``). Without either, the apps are open, which
is safe only because the server binds 127.0.0.1 by default.
"""

from __future__ import annotations

import os

from core_model.errors import DSuiteError

AUTH_ENV = "DSUITE_AUTH"


def parse_auth(spec: str | None) -> list[tuple[str, str]] | None:
    """Parse ``user:password[,user:password...]`` into Gradio's ``auth`` list (``None`` when empty).

    Raises:
        DSuiteError: an entry without ``:``, or with an empty user or password.
    """
    if spec is None or not spec.strip():
        return None
    accounts = []
    for entry in spec.split(","):
        user, sep, password = entry.strip().partition(":")
        if not sep or not user.strip() or not password:
            shown = f"{user}:***" if sep else entry.strip()[:40]
            raise DSuiteError(
                f"Login entry '{shown}' is not 'user:password'. Give --auth (or {AUTH_ENV}) as "
                "user:password, several separated by commas, e.g. alice:s3cret,bob:hunter2."
            )
        accounts.append((user.strip(), password))
    return accounts


def resolve_auth(option: str | None) -> list[tuple[str, str]] | None:
    """The accounts from ``--auth`` if given, else from ``DSUITE_AUTH``, else ``None`` (no login)."""
    return parse_auth(option if option is not None else os.environ.get(AUTH_ENV))

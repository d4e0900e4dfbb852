"""Launch the hub with safe defaults: loopback address, optional login, upload limits, no share link."""

from __future__ import annotations

import logging
import os
import threading

from core_model.paths import set_offline

logger = logging.getLogger(__name__)

QUEUE_CONCURRENCY = 4  # events of one kind running at once; the model serializes forward passes anyway
QUEUE_MAX_SIZE = 256  # waiting requests before new ones are refused with "queue is full"


def launch(host: str = "127.0.0.1", port: int = 7860, base: str | None = None, share: bool = False,
           block: bool = True, auth: str | None = None):
    """Start the hub (with every app in its tabs) on ``host:port``.

    Args:
        host: the address to bind; the default 127.0.0.1 is reachable from this machine only.
        port: the port.
        base: a local checkpoint folder to serve instead of the embedded base.
        share: ask Gradio for a public share link (off unless asked).
        block: serve until interrupted; ``False`` returns at once (tests).
        auth: ``user:password[,user:password]``; ``None`` reads ``DSUITE_AUTH`` (unset: no login).

    Raises:
        DSuiteError: a bad base folder or login string (before anything is served).
    """
    set_offline()
    if base:
        os.environ["DSUITE_BASE"] = base
    from apps import services
    from apps.auth import resolve_auth
    from apps.uploads import max_upload_mb

    accounts = resolve_auth(auth)
    limit = max_upload_mb()
    services.base()  # fail fast on a bad base, and have the model warm before the first request
    from core_model.quant import kernels

    # the engine's kernels compile once per machine (about a minute): start now, not at the first reply
    threading.Thread(target=kernels.native, name="dsuite-kernels", daemon=True).start()
    from apps.hub import demo

    if host not in ("127.0.0.1", "localhost", "::1") and not accounts:
        logger.warning("serving on %s without a login: anyone who can reach this address can use it "
                       "(set --auth user:password)", host)
    demo.queue(default_concurrency_limit=QUEUE_CONCURRENCY, max_size=QUEUE_MAX_SIZE)
    return demo.launch(
        server_name=host, server_port=port, share=share, prevent_thread_lock=not block, show_error=True,
        auth=accounts, auth_message="DomainSuite: sign in with the account given to `dsuite serve --auth`.",
        max_file_size=f"{limit}mb", ssr_mode=False, footer_links=["api"], quiet=True,
    )

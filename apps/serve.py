"""Launch the hub with safe defaults: loopback address, no share link, queue for concurrency."""

from __future__ import annotations

import logging
import os

from core_model.paths import set_offline

logger = logging.getLogger(__name__)


def launch(host: str = "127.0.0.1", port: int = 7860, base: str | None = None, share: bool = False,
           block: bool = True):
    """Start the hub on ``host:port`` and serve until interrupted (``block=False`` returns at once)."""
    set_offline()
    if base:
        os.environ["DSUITE_BASE"] = base
    from core_model import load_base

    load_base(base)  # fail fast on a bad base, and have the model warm before the first request
    from apps.hub import demo

    demo.queue(default_concurrency_limit=4)
    return demo.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                       show_error=True)

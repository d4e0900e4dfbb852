"""Run ``adapters.train_adapter`` in a worker thread and watch its progress bar, for live progress in a page.

``train_adapter`` reports progress on a tqdm bar (``desc="train NAME"``, postfix ``loss=...``); the watcher
reads that bar's public state (``n``, ``total``, ``postfix``) from ``tqdm._instances`` while the worker
runs, so the admin page can draw the loss curve step by step without changing the training code.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

_LOSS = re.compile(r"loss=([0-9.]+(?:e-?\d+)?)")


@dataclass
class TrainingProgress:
    """A snapshot of a running training: steps done, total, and the (step, running loss) points so far."""

    step: int = 0
    total: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    done: bool = False
    result: object = None
    error: BaseException | None = None


def _find_bar(desc: str):
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        if getattr(bar, "desc", "") == desc:
            return bar
    return None


def watch_training(run: Callable[[], object], bar_desc: str,
                   poll_s: float = 0.5) -> Iterator[TrainingProgress]:
    """Run ``run()`` in a thread and yield a progress snapshot whenever the bar named ``bar_desc`` moves.

    Args:
        run: the training call (e.g. a ``functools.partial`` of ``train_adapter`` with ``progress=True``).
        bar_desc: the tqdm description to watch (``train_adapter`` uses ``"train NAME"``).
        poll_s: how often the bar is read.

    Yields:
        Snapshots; the last one has ``done=True`` and either ``result`` or ``error`` set.
    """
    progress = TrainingProgress()

    def work() -> None:
        try:
            progress.result = run()
        except BaseException as exc:  # handed to the caller's thread
            progress.error = exc

    worker = threading.Thread(target=work, name=f"dsuite-{bar_desc}", daemon=True)
    worker.start()
    last = -1
    while worker.is_alive():
        worker.join(poll_s)
        bar = _find_bar(bar_desc)
        if bar is None:
            continue
        progress.total = int(bar.total or 0)
        progress.step = int(bar.n)
        match = _LOSS.search(str(getattr(bar, "postfix", "") or ""))
        if match and progress.step != last:
            last = progress.step
            progress.losses.append((progress.step, float(match.group(1))))
            yield progress
    progress.done = True
    if progress.result is not None and progress.total:
        progress.step = progress.total
    yield progress


def elapsed(since: float) -> str:
    """Seconds since ``since`` (a ``perf_counter`` stamp), formatted for a status line."""
    return f"{time.perf_counter() - since:.1f} s"

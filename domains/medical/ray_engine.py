"""``--engine ray``: the same per-note function on Ray Data, for notes that outgrow one machine.

Ray is an optional extra (``pip install "ray[data]"``). Pending chunks are handed to Ray Data as one
dataset of notes; ``map_batches`` runs ``batch.code_notes`` in Ray workers, results come back in order
(``preserve_order``) and are committed chunk by chunk exactly like the local engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from core_model.errors import DSuiteError

log = logging.getLogger(__name__)


def _code_batch(batch: dict, mode: str) -> dict:
    import json

    from domains.medical.batch import code_notes

    outcomes = code_notes([(str(i), str(t)) for i, t in zip(batch["id"], batch["text"], strict=True)], mode)
    return {"chunk": list(batch["chunk"]), "outcome": [json.dumps(o, sort_keys=True) for o in outcomes]}


def run_ray(chunks: Iterable, cfg, done: Callable) -> None:
    """Code every pending chunk on Ray Data and commit each through ``done(chunk, outcomes)``.

    Raises:
        DSuiteError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise DSuiteError(
            '--engine ray needs Ray Data: pip install "ray[data]" (or use --engine local).'
        ) from exc
    import json

    chunks = list(chunks)
    empty = [c for c in chunks if not c.notes]
    for chunk in empty:
        done(chunk, [])
    chunks = [c for c in chunks if c.notes]
    if not chunks:
        return
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            num_cpus=max(1, cfg.workers),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}},
        )
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        items = [{"chunk": c.index, "id": i, "text": t} for c in chunks for i, t in c.notes]
        dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(chunks), 4 * cfg.workers)))
        mapped = dataset.map_batches(
            _code_batch,
            fn_kwargs={"mode": cfg.mode},
            batch_size=cfg.chunk_size,
            batch_format="default",
            concurrency=max(1, cfg.workers),
        )
        by_index = {c.index: c for c in chunks}
        current, outcomes = None, []
        for row in mapped.iter_rows():
            if current is not None and row["chunk"] != current:
                done(by_index[current], outcomes)
                outcomes = []
            current = row["chunk"]
            outcomes.append(json.loads(row["outcome"]))
        if current is not None:
            done(by_index[current], outcomes)
    finally:
        if started_here:
            ray.shutdown()

"""The per-example cache of a run: ``samples.jsonl``, one line per (system, example), appended as it goes.

Lines are written and flushed after every batch, so an interrupted run loses at most the batch in
flight; a half-written last line (the process died mid-write) is ignored on resume.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"


def read_samples(run_dir: Path) -> dict[str, dict[str, dict]]:
    """Cached outputs of a run folder: ``{system label: {example id: output}}`` (empty when none)."""
    path = Path(run_dir) / SAMPLES_FILE
    cached: dict[str, dict[str, dict]] = {}
    if not path.is_file():
        return cached
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines):
                logger.warning("%s:%d: ignoring a half-written last line", path, number)
                continue
            raise DSuiteError(
                f"{path}:{number}: not valid JSON ({exc.msg}). The run cache is damaged; delete that line "
                "or start a fresh run (without --resume)."
            ) from exc
        if not {"system", "id", "output"} <= record.keys():
            raise DSuiteError(f"{path}:{number}: expected keys system, id and output; got {sorted(record)}.")
        cached.setdefault(record["system"], {})[str(record["id"])] = record["output"]
    return cached


def append_samples(run_dir: Path, system: str, records: Iterable[tuple[str, dict]]) -> None:
    """Append ``(example id, output)`` pairs of one system and flush them to disk."""
    path = Path(run_dir) / SAMPLES_FILE
    with path.open("a", encoding="utf-8") as handle:
        for example_id, output in records:
            line = json.dumps({"system": system, "id": str(example_id), "output": output}, sort_keys=True)
            handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())

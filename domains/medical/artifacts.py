"""The medical coder's JSON files (term and code tables, lexicon, neighbour index, ranker): written
atomically, the trained ones read with checks.

The trained files come from `dsuite medical train-ranker`; a missing or foreign one is an error that says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core_model.errors import DSuiteError

RETRAIN = "`dsuite medical train-ranker`"


def write_json(path: Path, data: dict, **dumps) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file, so a crash leaves the old file whole."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, **dumps), encoding="utf-8")
    tmp.replace(path)


def read_json(path: Path, what: str, expected: str, valid: Callable[[dict], bool]) -> dict:
    """The JSON object in ``path``, a ``what`` (e.g. "Lexicon file") that ``valid`` accepts.

    Raises:
        DSuiteError: the file is missing, or it is not ``expected`` (e.g. "a version-1 lexicon file").
    """
    path = Path(path)
    if not path.is_file():
        raise DSuiteError(f"{what} '{path}' not found. Train it with {RETRAIN}.")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not valid(data):
        raise DSuiteError(f"{path} is not {expected}; retrain with {RETRAIN}.")
    return data

"""Where the shared data sets live and how to read their files with clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from core_model.errors import DSuiteError
from core_model.paths import PROJECT_DATA as PROJECT_DATA  # re-exported: the data modules import it here
from core_model.paths import REPO_ROOT

DATASETS_ENV = "DSUITE_DATASETS"
DEFAULT_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


def text_fraction(text: str) -> float:
    """A stable number in [0, 1) from ``text`` (its SHA-1's first byte over 256; case and outer white space
    ignored): how the suite gives a split to data that ships without one."""
    import hashlib

    return hashlib.sha1(text.strip().lower().encode("utf-8")).digest()[0] / 256.0


def datasets_root() -> Path:
    """The shared data sets folder: ``$DSUITE_DATASETS`` or ``../shared/datasets`` beside the repository."""
    root = Path(os.environ.get(DATASETS_ENV) or DEFAULT_DATASETS).expanduser()
    if not root.is_dir():
        raise DSuiteError(
            f"Shared data sets folder '{root}' not found. Set {DATASETS_ENV} to the folder that holds "
            "dialog/, finance/ and medical/ (default: ../shared/datasets beside the repository)."
        )
    return root


def dataset_dir(relative: str) -> Path:
    """A data set folder under the shared root, e.g. ``dataset_dir("medical/codiesp_en")``."""
    folder = datasets_root() / relative
    if not folder.is_dir():
        raise DSuiteError(
            f"Data set folder '{folder}' not found under {DATASETS_ENV}={datasets_root()}. "
            f"Expected the shared layout with '{relative}/' inside it."
        )
    return folder


def read_jsonl(path: Path) -> Iterator[dict]:
    """Yield one dict per non-empty line; a malformed line raises an error naming file and line."""
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DSuiteError(
                    f"{path}:{number}: not valid JSON ({exc.msg}). Fix or remove that line."
                ) from exc
            if not isinstance(record, dict):
                raise DSuiteError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}.")
            yield record


def read_json(path: Path):
    """Load a JSON file; a malformed file raises an error naming it and the line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DSuiteError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from exc

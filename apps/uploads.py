"""Upload limits shared by the apps: allowed file types and the largest accepted size.

The server also refuses bodies above ``MAX_UPLOAD_MB`` (``launch(max_file_size=...)``); these checks give
a clear message in the app itself, naming what was given, what is accepted and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

from core_model.errors import DSuiteError

MAX_UPLOAD_ENV = "DSUITE_MAX_UPLOAD_MB"
DEFAULT_MAX_UPLOAD_MB = 20


def max_upload_mb() -> int:
    """The largest upload in MB (``DSUITE_MAX_UPLOAD_MB``, default 20)."""
    raw = os.environ.get(MAX_UPLOAD_ENV, str(DEFAULT_MAX_UPLOAD_MB))
    try:
        value = int(raw)
    except ValueError as exc:
        raise DSuiteError(f"{MAX_UPLOAD_ENV}={raw!r} is not a whole number of megabytes, e.g. 20.") from exc
    if value < 1:
        raise DSuiteError(f"{MAX_UPLOAD_ENV} must be at least 1 MB, got {value}.")
    return value


def upload_path(file: object) -> Path:
    """The local path of a Gradio upload (a path string, a ``FileData`` dict or an object with ``.name``)."""
    if isinstance(file, dict):
        file = file.get("path") or file.get("name")
    file = getattr(file, "name", file)
    if not file:
        raise DSuiteError("No file was uploaded: choose a file first.")
    return Path(str(file))


def check_upload(file: object, allowed: tuple[str, ...], what: str) -> Path:
    """Check an uploaded file's type and size.

    Args:
        file: the upload as Gradio passes it.
        allowed: accepted suffixes, e.g. ``(".csv", ".jsonl")``.
        what: what the file should hold, for the message (``"clinical notes"``).

    Returns:
        The path of the accepted file.

    Raises:
        DSuiteError: no file, a suffix not in ``allowed``, an empty file, or a file over the size limit.
    """
    path = upload_path(file)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DSuiteError(
            f"'{path.name}' is a {suffix or 'file without extension'}; {what} must be one of "
            f"{', '.join(allowed)}. Save the file in one of those formats and upload it again."
        )
    if not path.is_file():
        raise DSuiteError(f"The upload '{path.name}' did not arrive; upload it again.")
    size = path.stat().st_size
    limit = max_upload_mb()
    if size == 0:
        raise DSuiteError(f"'{path.name}' is empty; upload a file with {what}.")
    if size > limit * 1024 * 1024:
        raise DSuiteError(
            f"'{path.name}' is {size / 1024 / 1024:.1f} MB, over the {limit} MB upload limit; split it into "
            f"smaller files or raise the limit with {MAX_UPLOAD_ENV}."
        )
    return path

"""Paths of the finance domain's own data files (``data/finance``) and schema-validated loading."""

from __future__ import annotations

import json
from pathlib import Path

from core_model.errors import DSuiteError
from eval.data.paths import PROJECT_DATA, read_json, read_jsonl

FINANCE_DATA = PROJECT_DATA / "finance"


def data_file(name: str) -> Path:
    """A file in ``data/finance``.

    Raises:
        DSuiteError: the file does not exist.
    """
    path = FINANCE_DATA / name
    if not path.is_file():
        raise DSuiteError(f"Finance data file '{path}' not found; expected it in data/finance/ of the repo.")
    return path


def validated_jsonl(name: str, schema_name: str) -> list[dict]:
    """Records of ``data/finance/<name>``, each checked against ``data/finance/<schema_name>``.

    Raises:
        DSuiteError: a record breaks the schema (the message names file, line and the problem).
    """
    import jsonschema

    schema = read_json(data_file(schema_name))
    validator = jsonschema.Draft202012Validator(schema)
    rows = []
    for number, record in enumerate(read_jsonl(data_file(name)), start=1):
        errors = sorted(validator.iter_errors(record), key=lambda e: e.path)
        if errors:
            raise DSuiteError(f"{data_file(name)}:{number}: {errors[0].message} (schema {schema_name}).")
        rows.append(record)
    return rows


def validated_json(name: str, schema: dict) -> dict:
    """A JSON data file checked against an inline ``schema``."""
    import jsonschema

    data = read_json(data_file(name))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        raise DSuiteError(f"{data_file(name)}: {exc.message} at {list(exc.path)}.") from exc
    return data


def dumps(record: dict) -> str:
    """One JSONL line."""
    return json.dumps(record, ensure_ascii=False)

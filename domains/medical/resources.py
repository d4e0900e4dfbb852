"""The medical data files (rules, sections, synonyms, schemas): where they are, loaded and validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from core_model.errors import DSuiteError
from eval.data.paths import PROJECT_DATA

MEDICAL_DATA = PROJECT_DATA / "medical"
CONTEXT_RULES = MEDICAL_DATA / "context_rules.json"
SECTIONS = MEDICAL_DATA / "sections.json"
SYNONYMS = MEDICAL_DATA / "condition_synonyms.json"
OUTPUT_SCHEMA = MEDICAL_DATA / "coding_output.schema.json"
RANKER = MEDICAL_DATA / "icd_ranker.json"


def load_validated(path: Path, schema_path: Path) -> Any:
    """Read a JSON data file and validate it against its JSON schema.

    Args:
        path: the data file.
        schema_path: the JSON schema it must satisfy.

    Returns:
        The parsed JSON.

    Raises:
        DSuiteError: the file is missing, not JSON, or does not satisfy the schema (the message names the
            offending place).
    """
    path = Path(path)
    if not path.is_file():
        raise DSuiteError(
            f"Data file '{path}' not found. Expected a JSON file valid against {schema_path.name}."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DSuiteError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}).") from exc
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise DSuiteError(
            f"{path}: invalid at {where}: {exc.message}. Fix it to match the schema {schema_path.name}."
        ) from exc
    return data

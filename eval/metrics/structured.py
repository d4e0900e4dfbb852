"""Structured-output metrics: is a model's text valid JSON, and does it follow a JSON schema."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from core_model.errors import DSuiteError


def validate_json(text: str, schema: Mapping | None = None) -> tuple[bool, str | None]:
    """Parse ``text`` as JSON and validate it against ``schema`` (Draft 2020-12) when given.

    Returns:
        ``(valid, reason)``: reason is None when valid, else what failed (parse error or schema path).
    """
    import jsonschema

    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError) as exc:
        return False, f"not JSON: {exc}"
    if schema is None:
        return True, None
    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise DSuiteError(f"validate_json: the schema itself is invalid: {exc.message}.") from exc
    error = jsonschema.exceptions.best_match(validator_cls(schema).iter_errors(value))
    if error is None:
        return True, None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return False, f"schema: at {where}: {error.message}"


def json_validity(texts: Sequence[str], schema: Mapping | None = None) -> float:
    """Share of texts that parse as JSON and follow ``schema``."""
    if not texts:
        raise DSuiteError("json_validity: got no texts; expected at least one output to check.")
    return sum(validate_json(t, schema)[0] for t in texts) / len(texts)

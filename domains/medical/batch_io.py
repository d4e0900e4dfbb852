"""Streaming readers for the batch coder (CSV, JSONL, Parquet) that report bad rows instead of failing."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_model.errors import DSuiteError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


@dataclass
class RawRow:
    """One input row: its 0-based position, the record (or None) and a read error (or None)."""

    number: int
    record: dict[str, Any] | None
    error: str | None = None


def input_format(path: Path) -> str:
    """``csv``, ``jsonl`` or ``parquet`` from the file suffix.

    Raises:
        DSuiteError: an unsupported suffix.
    """
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DSuiteError(
            f"Input '{path}' has suffix '{Path(path).suffix}'; expected one of "
            f"{', '.join(sorted(FORMATS))} (CSV, JSONL or Parquet)."
        )
    return fmt


def read_rows(path: Path) -> Iterator[RawRow]:
    """Stream the rows of a CSV, JSONL or Parquet file.

    Undecodable bytes and lines that are not a JSON object come back as rows with ``error`` set.

    Raises:
        DSuiteError: the file is missing or its format unsupported.
    """
    path = Path(path)
    if not path.is_file():
        raise DSuiteError(f"Input file '{path}' not found. Pass a CSV, JSONL or Parquet file of notes.")
    fmt = input_format(path)
    if fmt == "jsonl":
        yield from _jsonl(path)
    elif fmt == "csv":
        yield from _csv(path)
    else:
        yield from _parquet(path)


def _jsonl(path: Path) -> Iterator[RawRow]:
    number = 0
    with path.open("rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRow(number, None, f"undecodable: not UTF-8 ({exc.reason} at byte {exc.start})")
                number += 1
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawRow(number, None, f"undecodable: not valid JSON ({exc.msg})")
                number += 1
                continue
            if not isinstance(record, dict):
                yield RawRow(number, None, f"malformed: expected a JSON object, got {type(record).__name__}")
            else:
                yield RawRow(number, record)
            number += 1


def _csv(path: Path) -> Iterator[RawRow]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle)
        for number, record in enumerate(reader):
            bad = [
                k
                for k, v in record.items()
                if isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v)
            ]
            if bad:
                yield RawRow(number, None, f"undecodable: not UTF-8 in column(s) {', '.join(map(str, bad))}")
            elif None in record:
                yield RawRow(number, None, "malformed: more fields than the header")
            else:
                yield RawRow(number, dict(record))


def _parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow.parquet as pq

    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            yield RawRow(number, record)
            number += 1


def write_output(records: Iterator[dict], path: Path) -> int:
    """Write coding results as JSONL or Parquet (by suffix), atomically; returns the row count."""
    path = Path(path)
    suffix = path.suffix.lower()
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    if suffix in (".jsonl", ".ndjson"):
        with tmp.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                count += 1
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([("id", pa.string()), ("codes", pa.list_(pa.string())), ("result", pa.string())])
        with pq.ParquetWriter(tmp, schema) as writer:
            buffer: list[dict] = []
            for record in records:
                buffer.append(
                    {
                        "id": record["id"],
                        "codes": [c["code"] for c in record["codes"]],
                        "result": json.dumps(record, ensure_ascii=False, sort_keys=True),
                    }
                )
                count += 1
                if len(buffer) >= 1000:
                    writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                    buffer = []
            if buffer:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
    else:
        raise DSuiteError(f"Output '{path}' has suffix '{path.suffix}'; expected .jsonl or .parquet.")
    tmp.replace(path)
    return count

"""Streaming readers for the batch coder (CSV, JSONL, Parquet) that report bad rows instead of failing.

Text input is read as UTF-8 with an optional byte-order mark (``utf-8-sig``), as Excel's "CSV UTF-8"
writes it; a UTF-16 or UTF-32 file (Excel's "Unicode Text", PowerShell's default) is refused with how to
convert it. A CSV file's delimiter is read from its header line: a comma, or the semicolon a European Excel
writes, a tab or a pipe when the header holds that and no comma; a ``.tsv`` file is tab-delimited.
``check_input`` looks at a file before a job starts (format, encoding, header or schema, the id and text
columns, at least one row).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core_model.errors import DSuiteError

FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
CSV_DELIMITERS = (",", ";", "\t", "|")  # a header with no comma: the first of the others it holds
OUTPUT_SUFFIXES = (".jsonl", ".ndjson", ".parquet", ".csv")
# --out results.csv: one row per assigned code (a note without codes: one row with its id alone)
CSV_COLUMNS = [
    "id",
    "code",
    "description",
    "score",
    "assertion",
    "support",
    "billable",
    "evidence",
    "start",
    "end",
    "section",
]
JSONL_PROBE_LINES = 100  # JSONL has no header: the id/text columns must appear in one of these first lines
ENCODING_PROBE_BYTES = 4096  # a NUL byte among the first bytes of a text input: UTF-16/UTF-32, not UTF-8
WIDE_BOMS = (  # the UTF-32 marks first: BOM_UTF32_LE starts with BOM_UTF16_LE
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass
class RawRow:
    """One input row: its 0-based position, the record (or None) and a read error (or None).

    ``number`` counts records from 0: data rows of a CSV (the header not counted; a row whose quoted text
    spans several lines is one record), non-blank lines of a JSONL file, rows of a Parquet file. A row with
    an error keeps its record when it could still be split into fields (bytes that are not UTF-8, too many
    CSV fields), so that the quarantine can name its id; undecodable bytes are in it as surrogate escapes.
    """

    number: int
    record: dict[str, Any] | None
    error: str | None = None
    line: int | None = None  # 1-based line of the file where the record starts (CSV, JSONL); None for Parquet


def input_format(path: Path) -> str:
    """``csv`` (also for ``.tsv``), ``jsonl`` or ``parquet`` from the file suffix.

    Raises:
        DSuiteError: an unsupported suffix.
    """
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DSuiteError(
            f"Input '{path}' has suffix '{Path(path).suffix}'; expected one of "
            f"{', '.join(sorted(FORMATS))} (CSV or TSV, JSONL or Parquet)."
        )
    return fmt


def read_rows(path: Path) -> Iterator[RawRow]:
    """Stream the rows of a CSV, JSONL or Parquet file.

    Undecodable bytes and lines that are not a JSON object come back as rows with ``error`` set.

    Raises:
        DSuiteError: the file is missing, its format unsupported, or a Parquet file cannot be read.
    """
    path = Path(path)
    fmt = _existing(path)
    if fmt == "jsonl":
        yield from _jsonl(path)
    elif fmt == "csv":
        yield from _csv(path)
    else:
        yield from _parquet(path)


def count_rows(path: Path) -> int:
    """How many rows ``read_rows`` yields (bad ones included): for a progress bar's total. JSONL and CSV are
    read once more by ``read_rows`` itself (so the count is the same by construction); Parquet's comes from
    its footer."""
    path = Path(path)
    if _existing(path) == "parquet":
        return _parquet_file(path).metadata.num_rows
    return sum(1 for _ in read_rows(path))


def _existing(path: Path) -> str:
    if not path.is_file():
        raise DSuiteError(f"Input file '{path}' not found. Pass a CSV, TSV, JSONL or Parquet file of notes.")
    return input_format(path)


def check_input(path: Path, id_col: str, text_col: str) -> list[str]:
    """Check an input file before a job starts; returns its column names (for JSONL: those of the first
    ``JSONL_PROBE_LINES`` lines).

    Raises:
        DSuiteError: the file is missing, of an unsupported format, not readable as that format (a Parquet
            file that is corrupt or not Parquet, a JSON array in a JSONL file, a CSV without a header, a CSV
            or JSONL file in UTF-16/UTF-32), the id or text column is not among its columns, or it has no
            rows (empty, blank lines only, a header only).
    """
    path = Path(path)
    fmt = _existing(path)
    if fmt != "parquet":
        _check_text_encoding(path)
    if fmt == "csv":
        with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            header = next(csv.reader(handle, delimiter=csv_delimiter(path)), None)
        if not header:
            raise DSuiteError(
                f"CSV input '{path}' has no header row; its first line must name the columns "
                f"(for example: {id_col},{text_col})."
            )
        columns = header
    elif fmt == "parquet":
        columns = list(_parquet_file(path).schema_arrow.names)
    else:
        if next(_jsonl_lines(path), None) is None:
            _no_rows(path, "it is empty or holds blank lines only")
        columns = _jsonl_columns(path)
        if columns is None:  # no JSON object in the first lines: every row is quarantined with its reason
            return []
    _check_columns(path, columns, id_col, text_col)
    if fmt == "csv" and next(read_rows(path), None) is None:
        _no_rows(path, "it has a header row only")
    if fmt == "parquet" and _parquet_file(path).metadata.num_rows == 0:
        _no_rows(path, "its table has 0 rows")
    return columns


def _check_columns(path: Path, columns: list[str], id_col: str, text_col: str) -> None:
    flags = (("--id-col", id_col), ("--text-col", text_col))
    missing = [(flag, col) for flag, col in flags if col not in columns]
    if missing:
        shown = ", ".join(repr(c) for c in columns[:50]) + (" ..." if len(columns) > 50 else "")
        named = " and ".join(f"'{col}' ({flag})" for flag, col in missing)
        raise DSuiteError(
            f"Input '{path}' has no column {named}; its columns are: {shown or '(none)'}. "
            "Name the note id and text columns with --id-col NAME and --text-col NAME."
        )


def _no_rows(path: Path, why: str) -> None:
    raise DSuiteError(
        f"Input '{path}' has no rows to code ({why}). Check that it is the right file and that the export "
        "that wrote it finished; a batch job needs at least one note."
    )


def _check_text_encoding(path: Path) -> None:
    """Refuse a CSV or JSONL file that is not UTF-8 as a whole: a UTF-16/UTF-32 byte-order mark, or NUL bytes
    near its start (UTF-16 without a mark). Single bad bytes (Latin-1) only quarantine their rows.

    Raises:
        DSuiteError: the file is empty, or in UTF-16/UTF-32 (or binary), with the commands to convert it.
    """
    with path.open("rb") as handle:
        head = handle.read(ENCODING_PROBE_BYTES)
    if not head:
        _no_rows(path, "it is empty: 0 bytes")
    found = next((name for bom, name in WIDE_BOMS if head.startswith(bom)), None)
    if found is None and b"\x00" not in head:
        return
    why = (
        f"it starts with a {found} byte-order mark" if found else "it has NUL bytes (UTF-16 or UTF-32 text?)"
    )
    excel = " (or in Excel: Save As 'CSV UTF-8 (Comma delimited)')" if path.suffix.lower() == ".csv" else ""
    raise DSuiteError(
        f"Input '{path}' is not UTF-8: {why}. The batch coder reads UTF-8 only. Convert it, e.g. "
        f"`iconv -f {found or 'UTF-16LE'} -t UTF-8 '{path}' > notes-utf8{path.suffix}`{excel}, and pass the "
        "converted file."
    )


def _jsonl_columns(path: Path) -> list[str] | None:
    """The keys of the JSON objects among the first lines of a JSONL file (None if there is none).

    Raises:
        DSuiteError: the file starts with '[' (a JSON array, not JSON Lines).
    """
    columns: dict[str, None] = {}
    found = False
    for probed, raw in enumerate(_jsonl_lines(path)):
        if probed == 0 and raw.lstrip().startswith(b"["):
            raise DSuiteError(
                f"Input '{path}' starts with '[': it looks like a JSON array, but JSONL needs one JSON "
                "object per line. Convert it (for example `jq -c '.[]' notes.json > notes.jsonl`) or save "
                "it as CSV."
            )
        if probed >= JSONL_PROBE_LINES:
            break
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(record, dict):
            found = True
            columns.update(dict.fromkeys(map(str, record)))
    return list(columns) if found else None


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(1-based line number, line)`` of the non-blank lines of a file, without a UTF-8 byte-order mark at
    its start."""
    with path.open("rb") as handle:
        for position, raw in enumerate(handle):
            if position == 0 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if raw.strip():
                yield position + 1, raw


def _jsonl_lines(path: Path) -> Iterator[bytes]:
    """The non-blank lines of a file, without a UTF-8 byte-order mark at its start."""
    return (raw for _, raw in _numbered_lines(path))


def _jsonl(path: Path) -> Iterator[RawRow]:
    for number, (line_number, raw) in enumerate(_numbered_lines(path)):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = f"undecodable: not UTF-8 ({exc.reason} at byte {exc.start}); save the file as UTF-8"
            yield RawRow(number, _escaped_record(raw), error, line_number)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield RawRow(number, None, f"undecodable: not valid JSON ({exc.msg})", line_number)
            continue
        if not isinstance(record, dict):
            error = f"malformed: expected a JSON object, got {type(record).__name__}"
            yield RawRow(number, None, error, line_number)
        else:
            yield RawRow(number, record, None, line_number)


def _escaped_record(raw: bytes) -> dict[str, Any] | None:
    """A JSON line that is not UTF-8 read with its bad bytes as surrogate escapes (None if not an object)."""
    try:
        record = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def csv_delimiter(path: Path) -> str:
    """The delimiter of a CSV or TSV file: a tab for ``.tsv``; for ``.csv`` a comma, unless its header line
    holds none and holds a semicolon, tab or pipe (in ``CSV_DELIMITERS`` order), then that one."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        header = handle.readline()
    if "," in header:
        return ","
    return next((d for d in CSV_DELIMITERS if d in header), ",")


def _csv(path: Path) -> Iterator[RawRow]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=csv_delimiter(path))
        header = next(reader, None)
        if header is None:
            return
        number = 0
        while True:
            line = reader.line_num + 1  # where the next record starts (a quoted field may span lines)
            fields = next(reader, None)
            if fields is None:
                return
            if not fields:  # a blank line, as csv.DictReader skips it
                continue
            record = dict(zip(header, fields, strict=False))
            if len(fields) < len(header):
                record.update(dict.fromkeys(header[len(fields) :]))
            bad = [k for k, v in record.items() if any("\udc80" <= ch <= "\udcff" for ch in v or "")]
            if bad:
                error = f"undecodable: not UTF-8 in column(s) {', '.join(bad)}; save the file as UTF-8"
            elif len(fields) > len(header):
                error = "malformed: more fields than the header"
            else:
                error = None
            yield RawRow(number, record, error, line)
            number += 1


def _parquet_file(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DSuiteError(
            f"Input '{path}' is not a readable Parquet file ({exc}); it may be truncated or another format "
            "renamed to .parquet. Export it again, or give a CSV or JSONL file with the matching suffix."
        ) from exc


def _parquet(path: Path) -> Iterator[RawRow]:
    import pyarrow as pa

    number = 0
    batches = _parquet_file(path).iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise DSuiteError(
                f"Input '{path}' could not be read after row {number} ({exc}); the Parquet file is damaged. "
                "Export it again, then rerun the same command (committed chunks are kept)."
            ) from exc
        if batch is None:
            return
        for record in batch.to_pylist():
            yield RawRow(number, record)
            number += 1


def fingerprint(path: Path) -> dict[str, Any]:
    """``{"size", "sha256"}`` of the whole file (read in 1 MiB blocks); a resumed job compares them."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": Path(path).stat().st_size, "sha256": digest.hexdigest()}


def write_output(records: Iterator[dict], path: Path) -> int:
    """Write coding results as JSONL, Parquet or CSV (by suffix; CSV: ``csv_rows``, UTF-8 with a byte-order
    mark, which Excel needs to read it as UTF-8), atomically; returns the number of notes."""
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
    elif suffix == ".csv":
        with tmp.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for record in records:
                writer.writerows(csv_rows(record))
                count += 1
    else:
        raise DSuiteError(f"Output '{path}' has suffix '{path.suffix}'; expected .jsonl, .parquet or .csv.")
    tmp.replace(path)
    return count


def csv_rows(record: dict) -> list[dict]:
    """The flat rows of one note's result (``CSV_COLUMNS``): one per code, the first evidence span's text,
    offsets and section; a note without codes gets one row with its id alone, so every note is listed."""
    from domains.medical.text import NO_SECTION

    rows = []
    for code in record["codes"]:
        first = code["evidence"][0] if code["evidence"] else {}
        rows.append(
            {
                "id": record["id"],
                "code": code["code"],
                "description": code["description"],
                "score": code["score"],
                "assertion": code["assertion"],
                "billable": code["billable"],
                "support": code.get("support", ""),
                "evidence": first.get("text", ""),
                "start": first.get("start", ""),
                "end": first.get("end", ""),
                "section": "" if first.get("section") == NO_SECTION else first.get("section") or "",
            }
        )
    return rows or [{"id": record["id"]}]

"""The batch EHR coding job: streaming, parallel, resumable, with a quarantine for bad rows.

Rows are read in input order and grouped into chunks of ``chunk_size`` rows. Each chunk's results and
quarantined rows are committed together as two part files (written to a temporary name, then renamed), in
``<OUTPUT>.parts/``. A rerun after a crash validates the input again (cheap) but skips every committed chunk,
so finished notes are neither redone nor duplicated. When all chunks are committed the parts are merged into
OUTPUT (JSONL or Parquet), ``<OUTPUT>.quarantine.jsonl`` and ``<OUTPUT>.summary.json``. Results contain no
timings, so a resumed run's output is byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core_model.errors import DSuiteError
from domains.medical.batch_io import RawRow, input_format, read_rows, write_output

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")
DEFAULT_MAX_CHARS = 100_000


@dataclass
class JobConfig:
    """Settings of one batch job (see ``run_batch``)."""

    input: Path
    output: Path
    id_col: str = "id"
    text_col: str = "text"
    workers: int = 1
    engine: str = "local"
    mode: str = "full"
    chunk_size: int = 64
    max_chars: int = DEFAULT_MAX_CHARS
    progress: bool = True


@dataclass
class Chunk:
    """Rows ``[index * size, ...)`` of the input: the valid notes and the quarantined rows."""

    index: int
    notes: list[tuple[str, str]] = field(default_factory=list)  # (id, text)
    quarantined: list[dict] = field(default_factory=list)
    rows: int = 0


def _validate(row: RawRow, cfg: JobConfig, seen: set[str]) -> tuple[str, str] | dict:
    """The ``(id, text)`` of a good row, or the quarantine record of a bad one."""

    def bad(reason: str, note_id: Any = None) -> dict:
        return {"row": row.number, "id": None if note_id is None else str(note_id), "reason": reason}

    if row.error:
        return bad(row.error)
    record = row.record or {}
    note_id = record.get(cfg.id_col)
    if isinstance(note_id, float) and not math.isnan(note_id) and note_id.is_integer():
        note_id = int(note_id)
    if note_id is None or (isinstance(note_id, float) and math.isnan(note_id)) or str(note_id).strip() == "":
        return bad(f"missing id: column '{cfg.id_col}' is absent or empty")
    if not isinstance(note_id, str | int) or isinstance(note_id, bool):
        return bad(f"bad id: expected text or an integer, got {type(note_id).__name__}", note_id)
    note_id = str(note_id).strip()
    text = record.get(cfg.text_col)
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return bad(f"missing text: column '{cfg.text_col}' is absent or null", note_id)
    if not isinstance(text, str):
        return bad(f"non-text: column '{cfg.text_col}' holds {type(text).__name__}, expected text", note_id)
    if not text.strip():
        return bad(f"missing text: column '{cfg.text_col}' is empty", note_id)
    if len(text) > cfg.max_chars:
        return bad(f"oversize: {len(text)} characters, the limit is {cfg.max_chars} (--max-chars)", note_id)
    if note_id in seen:
        return bad(f"duplicate id: '{note_id}' already appeared earlier in the input", note_id)
    seen.add(note_id)
    return note_id, text


def _chunks(cfg: JobConfig) -> Iterator[Chunk]:
    seen: set[str] = set()
    chunk = Chunk(0)
    for row in read_rows(cfg.input):
        index = row.number // cfg.chunk_size
        if index != chunk.index:
            yield chunk
            chunk = Chunk(index)
        chunk.rows += 1
        checked = _validate(row, cfg, seen)
        if isinstance(checked, dict):
            chunk.quarantined.append(checked)
        else:
            chunk.notes.append(checked)
    if chunk.rows:
        yield chunk


# -- the per-note function (shared by the local and Ray engines) --------------------------------------------
_CODER = None


def _coder(mode: str):
    global _CODER
    if _CODER is None or _CODER.mode != mode:
        from domains.medical.coder import IcdCoder

        _CODER = IcdCoder(mode)
    return _CODER


def code_note(note_id: str, text: str, mode: str = "full", doc=None) -> dict:
    """Code one note; a failure becomes a quarantine record instead of stopping the job.

    Args:
        note_id: the note's id.
        text: the note.
        mode: the coder mode.
        doc: the note already run through the coder's pipeline (``code_notes`` passes it).
    """
    try:
        return {"ok": _coder(mode).code(text, note_id, doc=doc)}
    except Exception as exc:  # noqa: BLE001  (one bad note must not stop a night's job)
        log.warning("note %s failed: %s", note_id, exc)
        return {"error": {"id": note_id, "reason": f"coding failed: {type(exc).__name__}: {exc}"}}


def code_notes(notes: list[tuple[str, str]], mode: str = "full") -> list[dict]:
    """``code_note`` for several notes, with their mentions embedded and retrieved in one batch.

    A note whose pipeline run fails is simply coded alone afterwards (and quarantined by ``code_note`` if it
    fails again); the results are the same as coding the notes one by one.
    """
    coder = _coder(mode)
    docs: list = []
    for _, text in notes:
        try:
            docs.append(coder.nlp(text) if isinstance(text, str) and text.strip() else None)
        except Exception:  # noqa: BLE001  (code_note below reports it)
            docs.append(None)
    try:
        coder.prefetch([doc for doc in docs if doc is not None])
    except Exception as exc:  # noqa: BLE001  (each note then retrieves on its own)
        log.warning("batched retrieval failed, coding note by note: %s", exc)
    return [code_note(note_id, text, mode, doc) for (note_id, text), doc in zip(notes, docs, strict=True)]


def _code_chunk(args: tuple[list[tuple[str, str]], str]) -> list[dict]:
    notes, mode = args
    return code_notes(notes, mode)


def _init_worker(mode: str) -> None:
    import torch

    torch.set_num_threads(1)
    _coder(mode)


# -- commit / merge -----------------------------------------------------------------------------------------
def _parts_dir(cfg: JobConfig) -> Path:
    return cfg.output.with_name(cfg.output.name + ".parts")


def _part_paths(cfg: JobConfig, index: int) -> tuple[Path, Path]:
    parts = _parts_dir(cfg)
    return parts / f"chunk-{index:08d}.results.jsonl", parts / f"chunk-{index:08d}.quarantine.jsonl"


def _write_atomic(path: Path, lines: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def _commit(cfg: JobConfig, chunk: Chunk, outcomes: list[dict]) -> tuple[int, int]:
    results = [o["ok"] for o in outcomes if "ok" in o]
    rows_of = {note_id: None for note_id, _ in chunk.notes}
    failed = [{"row": None, **o["error"]} for o in outcomes if "error" in o]
    quarantined = sorted(chunk.quarantined + failed, key=lambda q: (q["row"] is None, q["row"] or 0))
    results_path, quarantine_path = _part_paths(cfg, chunk.index)
    _write_atomic(quarantine_path, quarantined)
    _write_atomic(results_path, results)  # written last: its presence marks the chunk as committed
    del rows_of
    return len(results), len(quarantined)


def _read_parts(cfg: JobConfig, which: int) -> Iterator[dict]:
    for path in sorted(_parts_dir(cfg).glob("chunk-*.results.jsonl")):
        target = path if which == 0 else path.with_name(path.name.replace(".results.", ".quarantine."))
        with target.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


def run_batch(cfg: JobConfig) -> dict:
    """Run (or resume) a batch coding job.

    Args:
        cfg: the job settings.

    Returns:
        The summary (also written to ``<OUTPUT>.summary.json``).

    Raises:
        DSuiteError: bad settings (unknown engine, unsupported formats, workers < 1, Ray missing).
    """
    cfg.input, cfg.output = Path(cfg.input), Path(cfg.output)
    input_format(cfg.input)
    if cfg.output.suffix.lower() not in (".jsonl", ".ndjson", ".parquet"):
        raise DSuiteError(f"Output '{cfg.output}' must end in .jsonl or .parquet.")
    if cfg.engine not in ENGINES:
        raise DSuiteError(f"Unknown engine '{cfg.engine}'; expected one of {', '.join(ENGINES)}.")
    if cfg.workers < 1 or cfg.chunk_size < 1:
        raise DSuiteError(
            f"--workers ({cfg.workers}) and the chunk size ({cfg.chunk_size}) must be at least 1."
        )
    if cfg.input.resolve() == cfg.output.resolve():
        raise DSuiteError("The output path is the input path; choose another --out.")
    _parts_dir(cfg).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    bar = tqdm(desc="coding notes", unit="note", disable=not cfg.progress, dynamic_ncols=True)

    def pending() -> Iterator[Chunk]:
        for chunk in _chunks(cfg):
            counts["rows"] += chunk.rows
            if _part_paths(cfg, chunk.index)[0].is_file():
                counts["skipped_committed_notes"] += len(chunk.notes)
                continue
            yield chunk

    def done(chunk: Chunk, outcomes: list[dict]) -> None:
        coded, quarantined = _commit(cfg, chunk, outcomes)
        counts["coded_this_run"] += coded
        bar.update(len(chunk.notes))

    if cfg.engine == "ray":
        from domains.medical.ray_engine import run_ray

        run_ray(pending(), cfg, done)
    elif cfg.workers == 1:
        for chunk in pending():
            done(chunk, _code_chunk((chunk.notes, cfg.mode)))
    else:
        import multiprocessing as mp

        context = mp.get_context("spawn")
        with context.Pool(cfg.workers, initializer=_init_worker, initargs=(cfg.mode,)) as pool:
            queue: list[Chunk] = []

            def jobs() -> Iterator[tuple[list[tuple[str, str]], str]]:
                for chunk in pending():
                    queue.append(chunk)
                    yield chunk.notes, cfg.mode

            for outcomes in pool.imap(_code_chunk, jobs()):
                done(queue.pop(0), outcomes)
    bar.close()
    return _finish(cfg, counts, time.perf_counter() - started)


def _finish(cfg: JobConfig, counts: Counter, seconds: float) -> dict:
    coded = write_output(_read_parts(cfg, 0), cfg.output)
    quarantine_path = cfg.output.with_name(cfg.output.name + ".quarantine.jsonl")
    reasons: Counter[str] = Counter()
    quarantined = []
    for record in _read_parts(cfg, 1):
        reasons[record["reason"].split(":")[0]] += 1
        quarantined.append(record)
    _write_atomic(quarantine_path, quarantined)
    summary = {
        "input": str(cfg.input),
        "output": str(cfg.output),
        "quarantine": str(quarantine_path),
        "rows": counts["rows"],
        "coded": coded,
        "quarantined": len(quarantined),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "coded_this_run": counts["coded_this_run"],
        "skipped_already_committed": counts["skipped_committed_notes"],
        "engine": cfg.engine,
        "workers": cfg.workers,
        "mode": cfg.mode,
        "seconds": round(seconds, 2),
        "notes_per_s": round(counts["coded_this_run"] / seconds, 2) if seconds > 0 else None,
    }
    summary_path = cfg.output.with_name(cfg.output.name + ".summary.json")
    summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shutil.rmtree(_parts_dir(cfg), ignore_errors=True)
    log.info("batch coding finished: %s", summary)
    return summary

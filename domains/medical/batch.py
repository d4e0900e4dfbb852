"""The batch EHR coding job: streaming, parallel, resumable, with a quarantine for bad rows.

Rows are read in input order and grouped into chunks of ``chunk_size`` rows. Each chunk's results and
quarantined rows are committed together as two part files (written to a temporary name, then renamed), in
``<OUTPUT>.parts/``. A rerun after a crash validates the input again (cheap) but skips every committed chunk,
so finished notes are neither redone nor duplicated. When all chunks are committed the parts are merged into
OUTPUT (JSONL or Parquet), ``<OUTPUT>.quarantine.jsonl`` and ``<OUTPUT>.summary.json``. Results contain no
timings, so a resumed run's output is byte-identical to an uninterrupted one.

Resume rule: a job writes ``job.json`` (its manifest) into the parts folder before coding: the input's size
and SHA-256 (of the whole file) and every setting that changes results or chunking (``JOB_SETTINGS`` and,
for the full coder, the ranker version). A run that finds committed chunks of a job with another manifest
refuses to start (``DSuiteError``): rerun with the original settings, or pass ``restart=True``
(``--restart``) to delete the parts, or choose another output. ``workers``/``engine`` may change freely.
A finished job keeps its manifest in the summary (``"job"`` in ``<OUTPUT>.summary.json``; the returned summary
leaves it out). A rerun of the same job finds it complete and returns its summary without coding
(``already_complete``); a run with another manifest, or over an output without one, is refused the same way,
so finished results are never replaced by accident. ``restart=True`` deletes the parts and the outputs of an
earlier run, finished or not. Ctrl-C (SIGINT) raises ``BatchInterrupted`` (a ``KeyboardInterrupt``) whose
message says how many rows are committed; rerunning the same job resumes after them.

Checks before any coding: settings, the coder mode (and the ranker file of the full coder), the output paths,
the input's format and encoding (UTF-8), its id/text columns and that it has at least one row (an empty input
is an error, not an empty result). Before the merge, the committed parts must hold
``coded + quarantined == rows read``; otherwise nothing is written and the parts are kept.
The summary's ``status`` is ``"ok"``, or ``"no notes coded"`` when the input had rows but all were quarantined
(the CLI then exits with code 3).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from core_model.errors import DSuiteError
from domains.medical.batch_io import (
    OUTPUT_SUFFIXES,
    RawRow,
    check_input,
    count_rows,
    fingerprint,
    input_format,
    read_rows,
    write_output,
)
from domains.medical.resources import MEDICAL_DATA

log = logging.getLogger(__name__)
ENGINES = ("local", "ray")
DEFAULT_MAX_CHARS = 100_000
MANIFEST = "job.json"
MANIFEST_VERSION = 1
# the data files whose edits change the coding results (a resumed job must have coded with the same): the
# rules and dictionaries users extend, and the ICD index `dsuite medical build-index` rewrites
DATA_FILES = tuple(
    MEDICAL_DATA / name
    for name in (
        "context_rules.json",
        "sections.json",
        "condition_synonyms.json",
        "code_rules.json",
        "abbreviations.json",
        "icd10cm_minilm_sq8.codes.json",
        "icd10cm_minilm_sq8.faiss",
    )
)
# the coder's own code: a resumed job after an upgrade of the suite would code the rest differently too
CODE_FILES = tuple(sorted(Path(__file__).resolve().parent.glob("*.py")))
# the settings that change results or chunking, with their CLI flags (for the resume-refusal message)
JOB_SETTINGS = {
    "id_col": "--id-col",
    "text_col": "--text-col",
    "mode": "--mode",
    "chunk_size": "--chunk-size",
    "max_chars": "--max-chars",
}


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
    restart: bool = False  # start over: delete the parts and outputs of an earlier run (finished or not)
    # called as on_progress(rows done, rows in the input) after each committed chunk (and once at the start)
    on_progress: Callable[[int, int], None] | None = None


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) stopped a job; the message says how many rows are committed and how to resume."""


@dataclass
class Chunk:
    """Rows ``[index * size, ...)`` of the input: the valid notes and the quarantined rows.

    A quarantine record's ``"row"`` is the 0-based index of the record in the input (``RawRow.number``: CSV
    data rows not counting the header, non-blank JSONL lines, Parquet rows), also for notes whose coding
    failed; its ``"line"`` is the 1-based line of the file where the record starts, as an editor numbers it
    (the header is line 1 of a CSV; null for Parquet).
    """

    index: int
    notes: list[tuple[str, str]] = field(default_factory=list)  # (id, text)
    note_rows: list[tuple[int, int | None]] = field(default_factory=list)  # the (row, line) of each note
    quarantined: list[dict] = field(default_factory=list)
    rows: int = 0


def _validate(row: RawRow, cfg: JobConfig, seen: set[str]) -> tuple[str, str] | dict:
    """The ``(id, text)`` of a good row, or the quarantine record of a bad one."""

    def bad(reason: str, note_id: Any = None) -> dict:
        note_id = None if note_id is None else str(note_id)
        return {"row": row.number, "line": row.line, "id": note_id, "reason": reason}

    if row.error:
        return bad(row.error, _readable_id(row.record, cfg.id_col))
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


def _readable_id(record: dict | None, id_col: str) -> str | None:
    """The id of a row that could not be read whole (bad bytes in its text, extra fields), if it is clean."""
    note_id = (record or {}).get(id_col)
    if isinstance(note_id, bool) or not isinstance(note_id, str | int):
        return None
    note_id = str(note_id).strip()
    readable = note_id and not any("\udc80" <= ch <= "\udcff" for ch in note_id)
    return note_id if readable else None


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
            chunk.note_rows.append((row.number, row.line))
    if chunk.rows:
        yield chunk


# -- the per-note function (shared by the local and Ray engines) --------------------------------------------
_CODER = None
_CODER_KEY: tuple[str, str] | None = None


def _coder(mode: str):
    """This process's coder for ``mode``; a new one when the mode or the embedding precision changed (its
    retrieval caches hold vectors' hits of one precision)."""
    global _CODER, _CODER_KEY
    from domains.medical.embeddings import query_precision

    key = (mode, query_precision())
    if _CODER is None or _CODER_KEY != key:
        from domains.medical.coder import IcdCoder

        _CODER, _CODER_KEY = IcdCoder(mode), key
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


_INIT_ERROR: str | None = None  # why this worker process could not set up its coder


def _code_chunk(args: tuple[list[tuple[str, str]], str]) -> list[dict]:
    if _INIT_ERROR is not None:
        raise DSuiteError(
            f"A coding worker could not set up the coder ({_INIT_ERROR}). The chunks committed so far are "
            "kept: fix the cause and rerun the same command to resume."
        )
    notes, mode = args
    return code_notes(notes, mode)


def _exit_with_parent(interval: float = 1.0) -> None:
    """End this worker when the job's process is gone (SIGKILL, out of memory): a pool shuts its workers
    down only when the parent lives to do it, and an orphan would hold its coder's memory for good."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _init_worker(mode: str) -> None:
    """Set up a worker; a failure is reported by its first task, so the job ends instead of respawning."""
    global _INIT_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which shuts the pool down
    _exit_with_parent()
    try:
        import torch

        torch.set_num_threads(1)
        _coder(mode)
    except Exception as exc:  # noqa: BLE001  (re-raised as a DSuiteError by _code_chunk)
        _INIT_ERROR = f"{type(exc).__name__}: {exc}"


def _run_pool(cfg: JobConfig, chunks: Iterator[Chunk], done) -> None:
    """Code chunks in ``cfg.workers`` processes, committing them in input order (at most 2 per worker queued).

    Raises:
        DSuiteError: a worker could not set up its coder, or a worker process died.
    """
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(
        cfg.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(cfg.mode,)
    )
    queued: deque = deque()
    try:
        for chunk in chunks:
            queued.append((chunk, pool.submit(_code_chunk, (chunk.notes, cfg.mode))))
            if len(queued) >= 2 * cfg.workers:
                oldest, future = queued.popleft()
                done(oldest, future.result())
        while queued:
            oldest, future = queued.popleft()
            done(oldest, future.result())
    except KeyboardInterrupt:
        # Ctrl-C: the chunks being coded are not committed (a rerun codes them), so the workers stop
        # now instead of finishing them first
        for worker in mp.active_children():
            worker.terminate()
        raise
    except BrokenProcessPool as exc:
        raise DSuiteError(
            "A coding worker process died (out of memory, killed, or crashed while starting). The chunks "
            "committed so far are kept: fix the cause (fewer --workers use less memory) and rerun the same "
            "command to resume."
        ) from exc
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- commit / merge -----------------------------------------------------------------------------------------
def _parts_dir(cfg: JobConfig) -> Path:
    return cfg.output.with_name(cfg.output.name + ".parts")


def _quarantine_path(cfg: JobConfig) -> Path:
    return cfg.output.with_name(cfg.output.name + ".quarantine.jsonl")


def _summary_path(cfg: JobConfig) -> Path:
    return cfg.output.with_name(cfg.output.name + ".summary.json")


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
    if len(outcomes) != len(chunk.notes):
        raise DSuiteError(
            f"Internal error: chunk {chunk.index} has {len(chunk.notes)} notes but {len(outcomes)} results; "
            "nothing was committed for it. Please report this; rerun the same command to retry."
        )
    results = [o["ok"] for o in outcomes if "ok" in o]
    rows_of = dict(zip((note_id for note_id, _ in chunk.notes), chunk.note_rows, strict=True))
    failed = []
    for outcome in outcomes:
        if "error" in outcome:
            row, line = rows_of.get(outcome["error"]["id"], (None, None))
            failed.append({"row": row, "line": line, **outcome["error"]})
    quarantined = sorted(chunk.quarantined + failed, key=lambda q: (q["row"] is None, q["row"] or 0))
    results_path, quarantine_path = _part_paths(cfg, chunk.index)
    _write_atomic(quarantine_path, quarantined)
    _write_atomic(results_path, results)  # written last: its presence marks the chunk as committed
    return len(results), len(quarantined)


def _read_parts(cfg: JobConfig, which: int) -> Iterator[dict]:
    for path in _committed(cfg):
        target = path if which == 0 else path.with_name(path.name.replace(".results.", ".quarantine."))
        with target.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)


def _committed(cfg: JobConfig) -> list[Path]:
    return sorted(_parts_dir(cfg).glob("chunk-*.results.jsonl"))


# -- checks before coding -----------------------------------------------------------------------------------
def _check_settings(cfg: JobConfig) -> None:
    if cfg.output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise DSuiteError(
            f"Output '{cfg.output}' must end in .jsonl, .parquet or .csv (one row per code); got "
            f"'{cfg.output.suffix or '(no suffix)'}'."
        )
    if cfg.engine not in ENGINES:
        raise DSuiteError(f"Unknown engine '{cfg.engine}'; expected one of {', '.join(ENGINES)}.")
    if cfg.workers < 1 or cfg.chunk_size < 1 or cfg.max_chars < 1:
        raise DSuiteError(
            f"--workers ({cfg.workers}), --chunk-size ({cfg.chunk_size}) and --max-chars ({cfg.max_chars}) "
            "must be at least 1."
        )
    from domains.medical.coder import MODES

    if cfg.mode not in MODES:
        raise DSuiteError(f"Unknown coder mode '{cfg.mode}' (--mode); expected one of {', '.join(MODES)}.")
    if cfg.mode == "full":
        from domains.medical.resources import RANKER

        if not RANKER.is_file():
            raise DSuiteError(
                f"ICD ranker '{RANKER}' not found (needed by --mode full). Train it with "
                "`dsuite medical train-ranker`, or choose another --mode."
            )


def _check_output(cfg: JobConfig) -> None:
    """The output, its quarantine/summary files and the parts folder can be written where they are named."""
    out = cfg.output
    for path in (out, _quarantine_path(cfg), _summary_path(cfg)):
        if path.is_dir():
            raise DSuiteError(f"--out: '{path}' is an existing folder; give a file name such as coded.jsonl.")
    parts = _parts_dir(cfg)
    if parts.exists() and not parts.is_dir():
        raise DSuiteError(
            f"'{parts}' (the job's parts folder) is a file; move it away or choose another --out."
        )
    folder = out.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DSuiteError(f"--out '{out}': '{folder}' is a file, not a folder; choose another --out.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DSuiteError(f"--out '{out}': the folder '{folder}' is not writable; choose another --out.")


def _coder_version(mode: str) -> str:
    """The mode, the ranker version for the full coder (a retrained ranker changes the results), a digest
    of the data files and the coder's code (``DATA_FILES``, ``CODE_FILES``: edited rules, a rebuilt index or
    an upgraded suite change them too) and, for the modes that embed, the embedding precision
    (``DSUITE_MEDICAL_EMBEDDINGS``)."""
    from domains.medical.embeddings import query_precision
    from domains.medical.resources import RANKER

    digest = hashlib.sha256()
    for path in DATA_FILES + CODE_FILES:
        digest.update(path.read_bytes() if path.is_file() else b"(missing)")
    rules = f"rules:{digest.hexdigest()[:8]}"
    if mode != "dictionary":
        rules += f" embeddings:{query_precision()}"
    if mode != "full":
        return f"{mode} {rules}"
    try:
        return f"full:{json.loads(RANKER.read_text(encoding='utf-8'))['version']} {rules}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"full:unknown {rules}"


def _manifest(cfg: JobConfig) -> dict:
    """What makes a job: the input's content and every setting that changes results or chunking."""
    return {
        "manifest": MANIFEST_VERSION,
        "input": fingerprint(cfg.input),
        **{name: getattr(cfg, name) for name in JOB_SETTINGS},
        "coder": _coder_version(cfg.mode),
    }


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    if old.get("input") != new["input"]:
        then = old.get("input") if isinstance(old.get("input"), dict) else {}
        out.append(
            f"the input file's content (size {then.get('size')} bytes, SHA-256 "
            f"{str(then.get('sha256'))[:12]}... then; size {new['input']['size']} bytes, SHA-256 "
            f"{new['input']['sha256'][:12]}... now)"
        )
    for name, flag in JOB_SETTINGS.items():
        if old.get(name) != new[name]:
            out.append(f"{flag} ({old.get(name)!r} then, {new[name]!r} now)")
    if old.get("coder") != new["coder"] and old.get("mode") == new["mode"]:
        out.append(
            f"the coder ({old.get('coder')!r} then, {new['coder']!r} now: the ranker was retrained, the "
            "suite was upgraded, the rule or index files in data/medical changed, or the embedding precision "
            "(DSUITE_MEDICAL_EMBEDDINGS) differs)"
        )
    if not out and old != new:
        out.append(f"the manifest format ({old.get('manifest')!r} then, {new['manifest']!r} now)")
    return out


def _prepare_parts(cfg: JobConfig, manifest: dict) -> None:
    """Create the parts folder, or check that the one there belongs to this very job.

    Raises:
        DSuiteError: committed chunks of a job with another input or other settings (or without a manifest).
    """
    parts = _parts_dir(cfg)
    parts.mkdir(parents=True, exist_ok=True)
    path = parts / MANIFEST
    committed = _committed(cfg)
    if committed:
        how = (
            "Rerun with the original settings to resume it, or start over with --restart (it deletes "
            f"'{parts.name}'), or delete that folder, or choose another --out."
        )
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise DSuiteError(
                f"'{parts}' holds {len(committed)} committed chunk(s) of an earlier run but no readable job "
                f"manifest ({MANIFEST}), so they cannot be matched to this job. {how}"
            ) from None
        if not isinstance(old, dict):
            old = {}
        differences = _differences(old, manifest)
        if differences:
            raise DSuiteError(
                f"'{parts}' holds {len(committed)} committed chunk(s) of an earlier run with other settings: "
                f"{'; '.join(differences)}. Resuming would lose or duplicate notes. {how}"
            )
        return
    for stale in parts.glob("chunk-*"):  # quarantine parts (or temp files) of chunks never committed
        stale.unlink()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def _delete_earlier_run(cfg: JobConfig) -> None:
    """``--restart``: delete the parts and the outputs of an earlier run of this output, finished or not."""
    paths = (_parts_dir(cfg), cfg.output, _quarantine_path(cfg), _summary_path(cfg))
    earlier = [path for path in paths if path.exists()]
    if earlier:
        log.warning("--restart: deleting the results of an earlier run: %s", ", ".join(map(str, earlier)))
    for path in earlier:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def _finished_run(cfg: JobConfig, manifest: dict) -> dict | None:
    """The summary of a finished run of this very job at ``cfg.output``, marked ``already_complete`` (None
    when there is nothing finished to keep: the job is to be coded).

    Raises:
        DSuiteError: the output exists, but its summary records another job (other input or settings) or
            none (no readable summary with a job manifest).
    """
    if not cfg.output.exists():
        return None
    how = (
        "Rerun with the original settings (it finds the job complete), or pass --restart to code the input "
        "again and replace them, or choose another --out."
    )
    try:
        old = json.loads(_summary_path(cfg).read_text(encoding="utf-8"))
        job = old["job"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DSuiteError(
            f"'{cfg.output}' already exists, but '{_summary_path(cfg).name}' beside it is missing or records "
            "no batch job (written by another program or an older DomainSuite), so it cannot be matched to "
            "this job and would be replaced. Pass --restart to code the input again and replace it, or "
            "choose another --out."
        ) from None
    differences = _differences(job if isinstance(job, dict) else {}, manifest)
    if differences:
        raise DSuiteError(
            f"'{cfg.output}' holds the results of a finished earlier run with another input or other "
            f"settings: {'; '.join(differences)}. This run would replace them. {how}"
        )
    if not _quarantine_path(cfg).is_file():
        return None  # the quarantine file was removed: code again to rebuild both
    old.pop("job")
    return {
        **old,
        "coded_this_run": 0,
        "skipped_already_committed": old.get("coded"),
        "setup_seconds": 0.0,
        "seconds": 0.0,
        "notes_per_s": None,
        "already_complete": True,
    }


def _interrupted_message(cfg: JobConfig) -> str:
    rows = sum(_committed_counts(cfg))
    return (
        f"Interrupted: {rows} rows committed to '{_parts_dir(cfg)}'; rerun the same command to resume "
        f"(the merged results go to '{cfg.output}')."
    )


def run_batch(cfg: JobConfig) -> dict:
    """Run (or resume) a batch coding job; a rerun of a finished job returns its summary without coding.

    Args:
        cfg: the job settings.

    Returns:
        The summary (also written to ``<OUTPUT>.summary.json``); ``already_complete`` is True when the same
        job had already finished and nothing was coded.

    Raises:
        DSuiteError: bad settings (unknown engine or mode, unsupported formats, workers < 1, Ray missing), an
            output path that cannot be written, an unreadable, empty or non-UTF-8 input or a missing id/text
            column, committed parts or finished results of a job with other settings (see the module
            docstring), a worker that could not start, or a failed final row count.
        BatchInterrupted: Ctrl-C (SIGINT); the committed chunks are kept for a rerun.
    """
    cfg.input, cfg.output = Path(cfg.input), Path(cfg.output)
    input_format(cfg.input)
    _check_settings(cfg)
    _check_output(cfg)
    check_input(cfg.input, cfg.id_col, cfg.text_col)
    if cfg.input.resolve() == cfg.output.resolve():
        raise DSuiteError("The output path is the input path; choose another --out.")
    manifest = _manifest(cfg)
    if cfg.restart:
        _delete_earlier_run(cfg)
    elif not _committed(cfg):
        finished = _finished_run(cfg, manifest)
        if finished is not None:
            log.info("'%s' is already complete; nothing was coded", cfg.output)
            return finished
    try:
        _prepare_parts(cfg, manifest)
        return _code(cfg, manifest)
    except KeyboardInterrupt as exc:
        raise BatchInterrupted(_interrupted_message(cfg)) from exc


def _code(cfg: JobConfig, manifest: dict) -> dict:
    """Code the chunks not committed yet, then merge (``_finish``)."""
    setup_started = time.perf_counter()
    if cfg.engine == "local" and cfg.workers == 1:  # loaded before the clock: notes_per_s is the coding rate
        _coder(cfg.mode).code("Fever.")  # one tiny note loads what the coder loads lazily (encoders, indexes)
    setup = time.perf_counter() - setup_started
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    # the bar counts input rows (a quarantined row is done too) and starts at what earlier runs committed
    tracked = cfg.progress or cfg.on_progress is not None
    bar = tqdm(
        desc="coding notes",
        unit="note",
        total=count_rows(cfg.input) if tracked else None,
        initial=sum(_committed_counts(cfg)) if tracked else 0,
        disable=not cfg.progress,
        dynamic_ncols=True,
    )
    if cfg.on_progress is not None:
        cfg.on_progress(bar.n, bar.total)

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
        bar.update(chunk.rows)
        if cfg.on_progress is not None:
            cfg.on_progress(bar.n, bar.total)

    try:
        if cfg.engine == "ray":
            from domains.medical.ray_engine import run_ray

            run_ray(pending(), cfg, done)
        elif cfg.workers == 1:
            for chunk in pending():
                done(chunk, _code_chunk((chunk.notes, cfg.mode)))
        else:
            _run_pool(cfg, pending(), done)
    finally:
        bar.close()
    return _finish(cfg, manifest, counts, time.perf_counter() - started, setup)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def _committed_counts(cfg: JobConfig) -> tuple[int, int]:
    """``(coded, quarantined)`` rows in the committed parts."""
    committed = _committed(cfg)
    coded = sum(_count_lines(p) for p in committed)
    quarantined = sum(
        _count_lines(p.with_name(p.name.replace(".results.", ".quarantine."))) for p in committed
    )
    return coded, quarantined


def _finish(cfg: JobConfig, manifest: dict, counts: Counter, seconds: float, setup: float = 0.0) -> dict:
    """Check the row count, merge the parts into the outputs, write and return the summary (written with the
    job's ``manifest`` as ``"job"``, which a rerun compares).

    ``seconds`` is the coding time of this run and ``setup`` the coder's loading before it (one local worker;
    with more workers or Ray their start-up is inside ``seconds``)."""
    in_parts, in_quarantine = _committed_counts(cfg)
    if in_parts + in_quarantine != counts["rows"]:
        raise DSuiteError(
            f"Row count check failed: the input has {counts['rows']} rows, but the committed parts hold "
            f"{in_parts} coded + {in_quarantine} quarantined = {in_parts + in_quarantine}. Nothing was "
            f"written to '{cfg.output}'; the parts are kept in '{_parts_dir(cfg)}' for inspection. Start "
            "over with --restart (or delete that folder)."
        )
    support: Counter[str] = Counter()  # codes by support: how many a coder should review (inferred)

    def tallied(records: Iterator[dict]) -> Iterator[dict]:
        for record in records:
            support.update(code.get("support", "stated") for code in record["codes"])
            yield record

    coded = write_output(tallied(_read_parts(cfg, 0)), cfg.output)
    quarantine_path = _quarantine_path(cfg)
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
        "status": "no notes coded" if counts["rows"] and not coded else "ok",
        "rows": counts["rows"],
        "coded": coded,
        "quarantined": len(quarantined),
        "quarantine_reasons": dict(sorted(reasons.items())),
        "codes": sum(support.values()),
        "codes_inferred": support["inferred"],
        "coded_this_run": counts["coded_this_run"],
        "skipped_already_committed": counts["skipped_committed_notes"],
        "engine": cfg.engine,
        "workers": cfg.workers,
        "mode": cfg.mode,
        "setup_seconds": round(setup, 2),
        "seconds": round(seconds, 2),
        "notes_per_s": round(counts["coded_this_run"] / seconds, 2) if seconds > 0 else None,
        "already_complete": False,
    }
    summary_path = _summary_path(cfg)
    tmp = summary_path.with_name(summary_path.name + ".tmp")
    tmp.write_text(json.dumps({**summary, "job": manifest}, indent=2), encoding="utf-8")
    tmp.replace(summary_path)  # the job is finished once its summary is there: the parts go last
    shutil.rmtree(_parts_dir(cfg), ignore_errors=True)
    log.info("batch coding finished: %s", summary)
    return summary

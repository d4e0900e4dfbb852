"""Medical ICD-10-CM coding: one note with highlighted mentions, codes and evidence; batch coding of a file.

Paste or upload a note → every condition mention highlighted by its assertion status (present, possible,
historical, negated, family, hypothetical), a table of codes with descriptions and evidence, and the JSON
result to download. Upload a CSV/JSONL/Parquet of notes → the batch job with a progress bar → the results
and the quarantine file to download. Pure handlers and a module-level ``demo``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path

import gradio as gr
import pandas as pd

from apps.ui import user_error
from apps.uploads import check_upload, upload_path
from core_model.errors import DSuiteError
from domains.medical.batch_io import write_output

logger = logging.getLogger(__name__)

TITLE = "Medical coding"
# the coders a user may pick; "retrieval" (sentences matched to code descriptions, no negation) is an eval
# baseline only: it would code "Patient denies fever." as fever
MODES = ("full", "rules+retrieval", "dictionary")
NOTE_TYPES = (".txt", ".md")
BATCH_TYPES = (".csv", ".tsv", ".jsonl", ".parquet")
MAX_NOTE_CHARS = 100_000
BATCH_CHUNK = 20  # notes per committed chunk: the progress bar moves every 20 notes
CODE_COLUMNS = ["code", "description", "score", "asserted", "support", "billable", "evidence"]
ASSERTION_COLORS = {
    "present": "#2e7d32", "possible": "#f9a825", "historical": "#1565c0",
    "negated": "#c62828", "family": "#6a1b9a", "hypothetical": "#757575",
}
EXAMPLE = ("HISTORY: History of type 2 diabetes mellitus and hypertension. Mother had breast cancer.\n"
           "ASSESSMENT: Patient denies chest pain. Possible community-acquired pneumonia.")


def _domain():
    from domains import get_domain

    return get_domain("medical")


def read_note(text: str | None, file) -> str:
    """The note to code: the uploaded ``.txt`` file if one is given, else the pasted text.

    Raises:
        DSuiteError: no note, a wrong file type, a file that is not UTF-8 text, or an over-long note.
    """
    if file is not None:
        path = check_upload(file, NOTE_TYPES, "a clinical note")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DSuiteError(
                f"'{path.name}' is not UTF-8 text; save the note as UTF-8 and upload it again."
            ) from exc
    if not text or not text.strip():
        raise DSuiteError("Paste a clinical note or upload a .txt file: the note is empty.")
    if len(text) > MAX_NOTE_CHARS:
        raise DSuiteError(f"The note has {len(text)} characters; one note may have at most {MAX_NOTE_CHARS}. "
                          "Split it, or code a file of notes with the batch job below.")
    return text


def highlights(text: str, result: dict) -> dict:
    """``gr.HighlightedText`` value: each mention (coded evidence and excluded) labelled by its assertion."""
    spans: dict[tuple[int, int], str] = {}
    for code in result.get("codes", []):
        for evidence in code.get("evidence", []):
            spans.setdefault((evidence["start"], evidence["end"]), evidence.get("assertion", "present"))
    for excluded in result.get("excluded", []):
        spans[(excluded["start"], excluded["end"])] = excluded["assertion"]
    entities, last_end = [], -1
    for (start, end), assertion in sorted(spans.items()):
        if start >= last_end:  # overlapping spans: keep the first
            entities.append({"entity": assertion, "start": start, "end": end})
            last_end = end
    return {"text": text, "entities": entities}


def code_table(result: dict) -> pd.DataFrame:
    """One row per code: code, description, score, how the note asserts it (present, historical, possible),
    whether the note names it (stated) or it is inferred, whether it is billable, and the evidence (text,
    assertion, section)."""
    rows = []
    for code in result.get("codes", []):
        evidence = "; ".join(  # one entry per span: the JSON lists a span once per source that found it
            dict.fromkeys(
                f"“{e['text']}” ({e.get('assertion', 'present')}, {e.get('section') or 'no section'})"
                for e in code.get("evidence", [])
            )
        )
        billable = {True: "yes", False: "no (pick a subcode)"}.get(code.get("billable"), "")
        rows.append(
            [
                code["code"],
                code["description"],
                code["score"],
                code.get("assertion", ""),
                code.get("support", ""),
                billable,
                evidence,
            ]
        )
    return pd.DataFrame(rows, columns=CODE_COLUMNS)


def code_one(text: str | None, file=None, mode: str = "full") -> tuple[dict, pd.DataFrame, dict, str]:
    """Code one note.

    Returns:
        ``(highlighted mentions, codes table, JSON result, path of the JSON file to download)``.

    Raises:
        gr.Error: an empty or over-long note, a bad upload, an unknown mode, or a coder error.
    """
    try:
        if mode not in MODES:
            raise DSuiteError(f"Unknown coding mode {mode!r}; choose one of {', '.join(MODES)}.")
        note = read_note(text, file)
        result = _domain().pipeline["code"](note, note_id="note", mode=mode)
    except DSuiteError as exc:
        raise user_error(exc) from exc
    if file is not None and text and text.strip() and text.strip() != EXAMPLE.strip():
        gr.Info(f"Coded the uploaded file '{upload_path(file).name}', not the note typed in the box; remove "
                "the upload to code the typed note.")
    out = Path(tempfile.mkdtemp(prefix="dsuite-medical-")) / "coding.json"
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    if not result["codes"]:
        gr.Info(
            "No codes: no condition in the note was found, or every one was negated, a family member's or "
            "hypothetical (see the excluded mentions). Abbreviations are read as written out only when "
            "they are listed in data/medical/abbreviations.json (HTN, CHF, COPD ...); add yours there."
        )
    return highlights(note, result), code_table(result), result, str(out)


BATCH_CONTROLS = {  # the batch job's flags, as this page names them in its messages
    "--id-col NAME": "the Id column box",
    "--text-col NAME": "the Text column box",
    "--id-col": "the Id column box",
    "--text-col": "the Text column box",
    "--mode": "the Coder menu",
}


def code_batch(file, id_col: str = "id", text_col: str = "text", mode: str = "full",
               progress: gr.Progress = gr.Progress()) -> tuple[dict, str, str, str]:  # noqa: B008
    """Run the batch coding job over an uploaded CSV/JSONL/Parquet of notes, with a progress bar.

    Returns:
        ``(summary, path of the results JSONL, path of the same as CSV (one row per code), path of the
        quarantine JSONL)``.

    Raises:
        gr.Error: a bad upload, missing columns, an unknown mode, or a job error.
    """
    path = None  # the server's copy of the upload, once checked
    try:
        path = check_upload(file, BATCH_TYPES, "clinical notes")
        if mode not in MODES:
            raise DSuiteError(f"Unknown coding mode {mode!r}; choose one of {', '.join(MODES)}.")
        if not (id_col or "").strip() or not (text_col or "").strip():
            raise DSuiteError("Name the id column and the text column of the file (e.g. id and text).")
        work = Path(tempfile.mkdtemp(prefix="dsuite-batch-"))
        output = work / f"{path.stem}.coded.jsonl"
        progress(0, desc="coding notes")
        started = time.perf_counter()
        summary = _domain().pipeline["batch"](
            input=path, output=output, id_col=id_col.strip(), text_col=text_col.strip(), mode=mode,
            chunk_size=BATCH_CHUNK, progress=False,
            on_progress=lambda done, total: progress((done, total), desc="coding notes", unit="notes"),
        )
    except DSuiteError as exc:
        raise user_error(exc, upload=path, controls=BATCH_CONTROLS) from exc
    table = output.with_suffix(".csv")
    with output.open(encoding="utf-8") as handle:
        write_output((json.loads(line) for line in handle), table)
    logger.info("batch of %s coded in %.1f s", path.name, time.perf_counter() - started)
    shown = {key: value for key, value in summary.items() if key not in ("input", "output", "quarantine")}
    return shown, str(output), str(table), summary["quarantine"]


with gr.Blocks(title=f"DomainSuite — {TITLE}") as demo:
    gr.Markdown(f"## {TITLE}\nICD-10-CM codes with the evidence for each. Negated, family and hypothetical "
                "mentions are highlighted but not coded.")
    mode = gr.Dropdown(
        list(MODES), value="full", label="Coder",
        info="full: most accurate; rules+retrieval: about twice as fast; dictionary: fastest, exact terms",
    )
    with gr.Tab("One note"):
        with gr.Row():
            note = gr.Textbox(label="Clinical note", lines=8, value=EXAMPLE, elem_id="medical-note", scale=3)
            note_file = gr.File(label="…or upload a .txt note", file_types=list(NOTE_TYPES), scale=1)
        code_btn = gr.Button("Code the note", variant="primary", elem_id="medical-code-btn")
        marked = gr.HighlightedText(label="Mentions by assertion status", color_map=ASSERTION_COLORS,
                                    combine_adjacent=False, show_legend=True, elem_id="medical-highlights")
        codes = gr.Dataframe(headers=CODE_COLUMNS, label="Codes", interactive=False, wrap=True,
                             elem_id="medical-codes")
        with gr.Row():
            result_json = gr.JSON(label="Result (JSON)")
            result_file = gr.File(label="Download the JSON", elem_id="medical-json-file")
    with gr.Tab("Batch of notes"):
        gr.Markdown("Upload a CSV (or TSV), JSONL or Parquet file with one note per row. Bad rows (missing "
                    "id, empty or over-long text, duplicates) go to the quarantine file instead of stopping "
                    "the job.")
        with gr.Row():
            batch_file = gr.File(label="Notes (.csv, .tsv, .jsonl, .parquet)", file_types=list(BATCH_TYPES),
                                 elem_id="medical-batch-file")
            with gr.Column():
                id_col = gr.Textbox(value="id", label="Id column")
                text_col = gr.Textbox(value="text", label="Text column")
        batch_btn = gr.Button("Code the file", variant="primary", elem_id="medical-batch-btn")
        summary = gr.JSON(label="Summary", elem_id="medical-batch-summary")
        with gr.Row():
            coded_file = gr.File(label="Results (JSONL)", elem_id="medical-batch-results")
            table_file = gr.File(label="Results (CSV, one row per code)", elem_id="medical-batch-csv")
            quarantine_file = gr.File(label="Quarantine (JSONL)", elem_id="medical-batch-quarantine")

    code_btn.click(code_one, [note, note_file, mode], [marked, codes, result_json, result_file],
                   api_name="medical_code")
    batch_btn.click(code_batch, [batch_file, id_col, text_col, mode],
                    [summary, coded_file, table_file, quarantine_file], api_name="medical_batch",
                    concurrency_limit=1)

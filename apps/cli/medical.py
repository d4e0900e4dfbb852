"""`dsuite medical ...`: code a note, run the batch coding job, build the ICD index, train the ranker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from core_model.errors import DSuiteError

app = typer.Typer(
    help="Clinical NLP: ICD-10-CM coding with evidence, assertion, batch jobs.", no_args_is_help=True
)

NOTHING_CODED_EXIT = 3  # code-batch finished, but the input had rows and every one was quarantined
INTERRUPTED_EXIT = 130  # code-batch stopped by Ctrl-C (128 + SIGINT, as shells report it)

ModeOption = Annotated[
    str,
    typer.Option("--mode", help="Coder: full | rules+retrieval | dictionary | retrieval."),
]


@app.command()
def code(
    text: Annotated[str | None, typer.Argument(help="The note text (or use --file).")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="Read the note from this UTF-8 text file.")
    ] = None,
    mode: ModeOption = "full",
    note_id: Annotated[str | None, typer.Option("--id", help="Id copied into the result.")] = None,
    brief: Annotated[
        bool, typer.Option("--brief", help="One line per code and per excluded mention instead of JSON.")
    ] = False,
) -> None:
    """Code one note and print its JSON result (codes with evidence, excluded mentions)."""
    from domains.medical.coder import get_coder, validate_result

    if (text is None) == (file is None):
        raise DSuiteError("Give the note either as TEXT or with --file PATH (exactly one of them).")
    if file is not None:
        if file.is_dir():
            raise DSuiteError(f"--file '{file}' is a folder; pass one UTF-8 text file (or use code-batch).")
        if not file.is_file():
            raise DSuiteError(f"--file '{file}' not found; pass a UTF-8 text file with one note.")
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DSuiteError(f"--file '{file}' is not UTF-8 text ({exc.reason}); convert it first.") from exc
    result = get_coder(mode).code(text, note_id or (file.stem if file else None))
    validate_result(result)
    typer.echo(brief_lines(result) if brief else json.dumps(result, indent=2, ensure_ascii=False))


def brief_lines(result: dict) -> str:
    """A coding result for the terminal: a line per code (code, score, assertion, support, description and
    the evidence it quotes, with its section), then a line per excluded mention and why."""
    from domains.medical.text import NO_SECTION

    lines = []
    for code in result["codes"]:
        quoted = ", ".join(
            dict.fromkeys(f"'{e['text']}'" for e in code["evidence"] if e["text"] != e["sentence"])
        )
        sections = [e["section"] for e in code["evidence"] if e.get("section") not in (None, NO_SECTION)]
        section = sections[0] if sections else None
        where = f" in {section}" if section else ""
        lines.append(
            f"{code['code']:<8} {code['score']:.2f}  {code['assertion']:<10} {code['support']:<8} "
            f"{code['description']}  <- {quoted or repr(code['evidence'][0]['text'])}{where}"
        )
    for mention in result["excluded"]:
        lines.append(f"not coded: '{mention['text']}' ({mention['reason']})")
    return "\n".join(lines) if lines else "No codes and no excluded mentions."


@app.command("code-batch")
def code_batch(
    input: Annotated[
        Path, typer.Argument(help="Notes: a .csv (comma, semicolon or tab), .tsv, .jsonl or .parquet file.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Results: a .jsonl, .parquet or .csv file (CSV: one row per code).")
    ],
    id_col: Annotated[str, typer.Option("--id-col", help="Column holding the note id.")] = "id",
    text_col: Annotated[str, typer.Option("--text-col", help="Column holding the note text.")] = "text",
    workers: Annotated[int, typer.Option("--workers", min=1, help="Parallel worker processes.")] = 1,
    engine: Annotated[
        str, typer.Option("--engine", help="local | ray (Ray Data, optional extra).")
    ] = "local",
    mode: ModeOption = "full",
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Rows per atomic commit.")] = 64,
    max_chars: Annotated[
        int, typer.Option("--max-chars", min=1, help="Longer notes are quarantined.")
    ] = 100_000,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress bars (coding and model loading).")
    ] = False,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="Start over: delete the results of an earlier run of this --out (finished or not) first.",
        ),
    ] = False,
) -> None:
    """Code every note of a file: resumable, quarantines bad rows, prints a JSON summary at the end.

    A rerun resumes only with the same input and --id-col/--text-col/--mode/--chunk-size/--max-chars;
    a rerun of a finished job says it is complete and codes nothing.

    Otherwise (other input or settings, unfinished or finished) it is refused: use --restart (starts over)
    or another --out.

    Exit codes: 0 done (or already complete); 2 an error (bad settings, an empty, non-UTF-8 or unreadable
    input, an output path, a resume mismatch, a worker failure); 130 interrupted (Ctrl-C; rerun to resume).

    Exit code 3: finished, but every row of a non-empty input was quarantined (see the quarantine file).
    """
    from domains.medical.batch import BatchInterrupted, JobConfig, run_batch

    if quiet:
        import os

        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # the weight-loading bars of the coder's encoders
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # and of the worker processes, which read it
    job = JobConfig(
        input=input,
        output=out,
        id_col=id_col,
        text_col=text_col,
        workers=workers,
        engine=engine,
        mode=mode,
        chunk_size=chunk_size,
        max_chars=max_chars,
        progress=not quiet,
        restart=restart,
    )
    try:
        summary = run_batch(job)
    except BatchInterrupted as exc:
        typer.secho(str(exc), err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(INTERRUPTED_EXIT) from None
    typer.echo(json.dumps(summary))
    if summary["already_complete"]:
        typer.secho(
            f"'{out}' is already complete ({summary['coded']} coded, {summary['quarantined']} quarantined of "
            f"{summary['rows']} rows); nothing was coded again. Pass --restart to code it again.",
            err=True,
        )
    if summary["status"] != "ok":
        typer.secho(
            f"No note was coded: all {summary['rows']} rows were quarantined "
            f"({summary['quarantine_reasons']}); see {summary['quarantine']}.",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(NOTHING_CODED_EXIT)


@app.command("assert")
def assert_concept(
    text: Annotated[str, typer.Argument(help="A sentence or note.")],
    concept: Annotated[str, typer.Argument(help="The condition phrase inside it.")],
) -> None:
    """Print the assertion status (present/negated/possible/historical/hypothetical/family) of a concept.

    Exit code 2 when the text or concept is empty, or the concept does not occur in the text.
    """
    from domains.medical.assertion import assert_concept as assert_one

    result = assert_one(text, concept)
    if not result["found"]:
        raise DSuiteError(
            f"The concept {concept!r} does not occur in the text (compared ignoring case and spacing), so it "
            "has no assertion status. Give the condition phrase as the text writes it, e.g. "
            '`dsuite medical assert "Patient denies chest pain." "chest pain"`.'
        )
    typer.echo(json.dumps(result))


@app.command("build-index")
def build_index_command(
    codes: Annotated[str, typer.Option("--codes", help="core (shipped) | all (every code; slow).")] = "core",
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder for the index files.")] = None,
) -> None:
    """Rebuild the faiss index of ICD-10-CM descriptions (all-MiniLM-L6-v2)."""
    from domains.medical.icd_index import build_index
    from domains.medical.resources import MEDICAL_DATA

    typer.echo(json.dumps({"index": str(build_index(out_dir or MEDICAL_DATA, codes=codes))}))


@app.command("train-ranker")
def train_ranker_command(
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-fitting folds.")] = 5,
) -> None:
    """Retrain the code lexicon and the ICD ranker on CodiEsp train (writes data/medical/)."""
    from domains.medical.ranker import train_ranker

    typer.echo(json.dumps(train_ranker(folds=folds)))

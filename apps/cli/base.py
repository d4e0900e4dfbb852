"""`dsuite base ...`: prepare and describe the base model."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from apps.cli.options import BaseOption, JsonOption

app = typer.Typer(help="Prepare and inspect the base model.", no_args_is_help=True)


@app.command()
def prepare(
    force: Annotated[bool, typer.Option("--force", help="Rebuild the cached checkpoint.")] = False,
) -> None:
    """Convert the embedded SmolLM2 GGUF into the suite's architecture and cache it (once)."""
    from core_model.base import embedded_hf_dir, prepare_embedded
    from core_model.fingerprint import fingerprint

    folder = prepare_embedded(force=force)
    record = {"path": str(folder), "fingerprint": fingerprint(folder), "reference": str(embedded_hf_dir())}
    typer.echo(json.dumps(record))


@app.command()
def check(
    base: BaseOption = None,
    reference: Annotated[
        str | None, typer.Option("--reference", help="Llama checkpoint the base was converted from.")
    ] = None,
    new_tokens: Annotated[
        int, typer.Option("--new-tokens", min=1, help="Greedy tokens compared per prompt.")
    ] = 64,
) -> None:
    """Logit parity of the converted base against transformers' Llama on the same weights (one JSON line)."""
    from core_model.check import run_check

    result = run_check(base, reference, new_tokens=new_tokens)
    typer.echo(json.dumps(result))
    if not result["passed"]:
        raise typer.Exit(1)


@app.command()
def info(
    base: BaseOption = None,
    as_json: JsonOption = False,
    load: Annotated[
        bool, typer.Option("--load", help="Also build the PyTorch model as the apps do and time it.")
    ] = False,
) -> None:
    """Read the base (config, weights, tokenizer) and print its path, fingerprint and shape."""
    import time

    from core_model.base import resolve_base_path
    from core_model.describe import describe_base

    record = describe_base(resolve_base_path(base))
    if load:
        from core_model import load_base

        start = time.perf_counter()
        loaded = load_base(base)
        record.update(loaded.info)
        record["load_seconds"] = round(time.perf_counter() - start, 3)
    if as_json:
        typer.echo(json.dumps(record))
    else:
        for key, value in record.items():
            typer.echo(f"{key:>24}: {value}")


def _calibration_texts(limit_chars: int = 400_000) -> tuple[list[str], str]:
    """Clinical case reports (CodiEsp train) and financial news sentences (PhraseBank), interleaved.

    Not the held-out text of bench/sparsity.py (MTSamples, MultiWOZ, TAT-QA).
    """
    from eval.data.paths import dataset_dir, read_jsonl

    clinical_file = dataset_dir("medical/codiesp_en") / "codiesp_en_train.jsonl"
    finance_file = dataset_dir("finance/financial_phrasebank") / "fpb_sentences.jsonl"
    clinical = [r["text_en"] for r in read_jsonl(clinical_file)]
    finance = [r["sentence"] for r in read_jsonl(finance_file)]
    texts, size = [], 0
    for i, note in enumerate(clinical):
        chunk = [note, " ".join(finance[i * 20 : (i + 1) * 20])]
        texts.extend(c for c in chunk if c)
        size += sum(len(c) for c in chunk)
        if size >= limit_chars:
            break
    return texts, "CodiEsp-en train case reports + Financial PhraseBank sentences"


@app.command()
def calibrate(
    base: BaseOption = None,
    steps: Annotated[int, typer.Option("--steps", min=1, help="Optimizer steps per router and gate.")] = 300,
    seqs: Annotated[int, typer.Option("--seqs", min=1, help="Calibration rows of --seq-len tokens.")] = 16,
    seq_len: Annotated[int, typer.Option("--seq-len", min=16, help="Tokens per calibration row.")] = 256,
) -> None:
    """Fit the MoE routers and hybrid gates on text (everything else frozen); prints one JSON line."""
    from core_model import load_base
    from core_model.calibrate import calibrate as run_calibration

    texts, source = _calibration_texts()
    folder = run_calibration(load_base(base), texts, steps=steps, seq_len=seq_len, n_seqs=seqs, source=source)
    record = json.loads((folder / "calibration.json").read_text())
    record.pop("losses")
    typer.echo(json.dumps({"path": str(folder), **record}))

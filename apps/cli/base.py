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
def info(base: BaseOption = None, as_json: JsonOption = False) -> None:
    """Load the base and print its path, fingerprint and shape."""
    import time

    from core_model import load_base

    start = time.perf_counter()
    loaded = load_base(base)
    record = {
        "path": str(loaded.path),
        "fingerprint": loaded.fingerprint,
        "name": loaded.name,
        **loaded.info,
        "load_seconds": round(time.perf_counter() - start, 3),
    }
    if as_json:
        typer.echo(json.dumps(record))
    else:
        for key, value in record.items():
            typer.echo(f"{key:>24}: {value}")

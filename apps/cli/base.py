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
    """Convert the embedded SmolLM2 GGUF into the cached base checkpoint (once)."""
    from core_model.base import prepare_embedded
    from core_model.fingerprint import fingerprint

    folder = prepare_embedded(force=force)
    typer.echo(json.dumps({"path": str(folder), "fingerprint": fingerprint(folder)}))


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

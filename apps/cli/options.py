"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

BaseOption = Annotated[
    str | None,
    typer.Option(
        "--base",
        envvar="DSUITE_BASE",
        help="Local Hugging Face checkpoint folder to use as the base (default: the embedded SmolLM2).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]

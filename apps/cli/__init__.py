"""The `dsuite` command line: one Typer app, one sub-app per group, each in its own module.

Commands are typed functions that call the seams (``core_model.load_base``, ``adapters``, ``domains``,
``eval``) and hold no logic of their own. A group module that is not present yet is skipped, so each
package adds its commands by adding ``apps/cli/<group>.py`` with a module-level ``app`` and listing it here.
"""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from core_model.errors import DSuiteError
from core_model.paths import set_offline

# group name -> module with a Typer `app`
GROUPS = {
    "base": "apps.cli.base",
    "eval": "apps.cli.eval",
    "adapters": "apps.cli.adapters",
    "medical": "apps.cli.medical",
    "finance": "apps.cli.finance",
    "cs": "apps.cli.cs",
}

app = typer.Typer(
    name="dsuite",
    help="DomainSuite: one base language model, per-domain LoRA adapters, three industries.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _add_groups() -> None:
    from apps.cli import run as run_commands

    run_commands.register(app)
    for group, module_name in GROUPS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        app.add_typer(module.app, name=group)


_add_groups()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `dsuite` console script; turns suite errors into exit code 2."""
    set_offline()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        check_text_arguments(sys.argv[1:] if argv is None else argv)
        app(args=argv, standalone_mode=True)
    except DSuiteError as exc:
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)


def is_utf8(text: str) -> bool:
    """False for text decoded with ``surrogateescape`` from bytes that are not UTF-8 (Python keeps them as
    lone surrogates that no later step can encode)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text_arguments(args: list[str]) -> None:
    """Refuse an argument that is not UTF-8 text (the shell passed bytes in another encoding)."""
    for position, arg in enumerate(args, start=1):
        if not is_utf8(arg):
            raw = arg.encode("utf-8", "surrogateescape")
            bad = next(ord(c) - 0xDC00 for c in arg if "\udc80" <= c <= "\udcff")  # the escaped byte
            shown = raw.decode("utf-8", "backslashreplace")  # bad bytes shown as \xNN, the rest as typed
            raise DSuiteError(
                f"Argument {position} ({shown}) is not UTF-8 text (byte 0x{bad:02x}). Pass it in "
                "UTF-8, e.g. with a UTF-8 terminal locale or through `iconv -f latin1 -t utf-8`."
            )

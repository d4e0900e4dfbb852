"""Every `dsuite` command has a working --help; bad input exits 2 with a clear message."""

from __future__ import annotations

import subprocess

import pytest
import typer
from typer.testing import CliRunner

from apps.cli import app
from tests.conftest import dsuite_command

runner = CliRunner()


def _command_paths(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(group, "commands"):  # a group (Typer vendors its own click)
        for name, sub in group.commands.items():
            paths.extend(_command_paths(sub, prefix + (name,)))
    return paths


ALL_COMMANDS = _command_paths(typer.main.get_command(app))


def test_expected_commands_exist():
    names = {" ".join(path) for path in ALL_COMMANDS}
    for expected in ("generate", "chat", "serve", "base prepare", "base info"):
        assert expected in names


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda p: " ".join(p) or "dsuite")
def test_help_exits_zero(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_bad_base_is_a_clear_error_with_exit_code_2(tmp_path):
    missing = tmp_path / "no-such-model"
    command = dsuite_command("base", "info", "--base", str(missing))
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 2
    assert str(missing) in proc.stderr
    assert "config.json" in proc.stderr and "save_pretrained" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_base_folder_without_weights_names_what_is_missing(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    command = dsuite_command("generate", "hi", "--base", str(tmp_path))
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "missing weights" in proc.stderr and "tokenizer" in proc.stderr


def test_an_argument_that_is_not_utf8_is_a_clear_error():
    """A Latin-1 terminal passes "café" as bytes Python cannot encode again: refused before any command."""
    import os

    from tests.conftest import run_dsuite

    proc = run_dsuite("route", os.fsdecode(b"caf\xe9 refund"), timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Argument 2 (caf\\xe9 refund) is not UTF-8 text (byte 0xe9)" in proc.stderr, proc.stderr


def test_the_bad_byte_is_named_after_correct_utf8_characters_too():
    import os

    from apps.cli import check_text_arguments
    from core_model.errors import DSuiteError

    with pytest.raises(DSuiteError, match=r"Argument 2 \(\u00e9 and \\xff\) is not UTF-8 text \(byte 0xff\)"):
        check_text_arguments(["ok", "\u00e9 and " + os.fsdecode(b"\xff")])
    check_text_arguments(["\u00e9 is fine"])


def test_a_mistyped_registry_or_an_empty_prompt_is_refused_and_eval_list_shows_splits(tmp_path):
    from tests.conftest import run_dsuite

    missing = tmp_path / "regsitry"
    proc = run_dsuite("adapters", "list", "--registry", str(missing), timeout=120)
    assert proc.returncode == 2 and "No adapter registry at" in proc.stderr, proc.stderr
    assert not missing.exists()  # a read never creates the folder
    proc = run_dsuite("generate", "  ", timeout=120)
    assert proc.returncode == 2 and "generate needs a prompt" in proc.stderr
    listed = run_dsuite("eval", "list", timeout=120)
    assert "splits: test, validation; baselines: minilm_lr" in listed.stdout  # cs.banking77

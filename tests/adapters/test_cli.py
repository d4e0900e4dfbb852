"""`dsuite adapters ...`: help, train/list/show/alias/rollback/remove, and bad input (exit code 2)."""

from __future__ import annotations

import json

import pytest

from adapters.data import write_jsonl
from apps.cli import main

COMMANDS = [
    "train",
    "list",
    "show",
    "register",
    "remove",
    "alias",
    "rollback",
    "generate",
    "continual-run",
    "continual-report",
]


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out = capsys.readouterr()
    return stop.value.code or 0, out.out, out.err


def test_every_command_has_help(capsys):
    for command in COMMANDS:
        code, out, _ = run(capsys, "adapters", command, "--help")
        assert code == 0 and "Usage" in out, command


def test_train_and_manage(capsys, tmp_path, tiny_base, monkeypatch):
    monkeypatch.setenv("DSUITE_ADAPTERS", str(tmp_path / "reg"))
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": f"q{i}", "completion": "yes" if i % 2 else "no"} for i in range(12)]
    )
    for flag in ("--name", "--domain"):  # --domain: DESIGN.md's spelling of the same option
        code, out, err = run(
            capsys,
            "adapters",
            "train",
            flag,
            "yn",
            "--data",
            str(data),
            "--preset",
            "tiny",
            "--base",
            str(tiny_base.path),
            "--json",
        )
        assert code == 0, err
        assert "trainable parameters" in err
    assert json.loads(out)["adapter"] == "yn@2"
    code, out, _ = run(capsys, "adapters", "list", "--json")
    assert json.loads(out)[0]["versions"] == [1, 2]
    code, out, _ = run(capsys, "adapters", "alias", "yn", "stable", "1")
    assert "yn@stable -> yn@1" in out
    code, out, _ = run(capsys, "adapters", "rollback", "yn")
    assert "yn@latest -> yn@1 (was yn@2; undo: dsuite adapters alias yn latest 2)" in out
    code, out, _ = run(capsys, "adapters", "show", "yn", "--json")
    record = json.loads(out)
    assert record["training"]["settings"]["r"] == 4
    code, out, _ = run(capsys, "adapters", "show", "yn")  # readable: one line per training entry
    lines = out.splitlines()
    assert "          training:" in lines and any(line.strip().startswith("settings: {") for line in lines)
    losses = next(line for line in lines if line.strip().startswith("losses: "))
    assert losses.strip() == "losses: " + json.dumps(record["training"]["losses"])  # 4 steps: listed in full
    code, out, _ = run(capsys, "adapters", "remove", "yn@2")
    assert "removed yn@2" in out
    code, _, err = run(capsys, "adapters", "show", "nope")
    assert code == 2 and "No adapter named 'nope'" in err


def test_bad_data_exits_2_naming_the_line(capsys, tmp_path, tiny_base, monkeypatch):
    monkeypatch.setenv("DSUITE_ADAPTERS", str(tmp_path / "reg"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a"}\n')
    code, _, err = run(
        capsys, "adapters", "train", "--name", "x", "--data", str(bad), "--base", str(tiny_base.path)
    )
    assert code == 2
    assert "bad.jsonl:2" in err and "completion" in err


@pytest.mark.parametrize(
    "flag, value", [("--lr", "-0.001"), ("--batch-size", "0"), ("--r", "0"), ("--eval-fraction", "1.5")]
)
def test_an_out_of_range_setting_is_refused_naming_its_flag(capsys, tmp_path, monkeypatch, flag, value):
    monkeypatch.setenv("DSUITE_REGISTRY", str(tmp_path / "reg"))
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "completion": "a"}] * 4)
    code, _, err = run(capsys, "adapters", "train", "--name", "x", "--data", str(data), flag, value)
    assert code == 2 and f"Invalid value for '{flag}'" in err, err
    assert not (tmp_path / "reg").exists()


def test_long_lists_are_summarised_unless_json():
    from apps.cli.adapters import _brief

    assert _brief([0.5, 0.25]) == "[0.5, 0.25]"
    losses = [2.0 - i / 100 for i in range(120)]
    assert _brief(losses) == "120 values, first 2, last 0.81, min 0.81, max 2 (--json lists them)"
    assert _brief(list("abcdefghij")).endswith('"h", ... 10 items in all] (--json lists them)')

"""Finance eval tasks through the real runner, and the `dsuite finance` commands."""

from __future__ import annotations

import json
import subprocess

from typer.testing import CliRunner

import domains.finance  # noqa: F401 - registers the domain and its tasks
from apps.cli.finance import app
from eval import run, task_names
from eval.data.ohlcv import ohlcv_path
from eval.registry import SystemSpec
from tests.conftest import dsuite_command, invoke_dsuite, last_json

FINANCE_TASKS = {
    "finance.sentiment",
    "finance.tatqa",
    "finance.terms",
    "finance.grounding",
    "finance.define",
    "finance.indicators",
}


def test_every_finance_task_is_registered():
    assert FINANCE_TASKS <= set(task_names())


def test_terms_task_meets_precision_and_recall(tmp_path):
    report = run("finance.terms", SystemSpec(), out_dir=tmp_path / "terms", progress=False, plots=False)
    metrics = report.rows[0].metrics
    assert metrics["precision"] >= 0.9 and metrics["recall"] >= 0.9


def test_sentiment_baselines_and_indicator_parity(tmp_path):
    systems = [SystemSpec(baseline="lexicon"), SystemSpec(baseline="majority")]
    report = run("finance.sentiment", systems, limit=60, out_dir=tmp_path / "s", progress=False, plots=False)
    lexicon, majority = (row.metrics for row in report.rows)
    assert lexicon["macro_f1"] > majority["macro_f1"]
    parity = run(
        "finance.indicators",
        [SystemSpec(), SystemSpec(baseline="stale")],
        limit=3,
        out_dir=tmp_path / "i",
        progress=False,
        plots=False,
    )
    ours, stale = (row.metrics for row in parity.rows)
    assert ours["figure_match"] == 1.0 and stale["figure_match"] < 0.9


def test_cli_feed_replay_streams_bars():
    result = subprocess.run(
        dsuite_command("finance", "feed", "--replay", str(ohlcv_path("KO")), "--tail", "2"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("1998-05-29 KO close") and lines[1].startswith("1998-06-01 KO close")
    assert lines[2].startswith("snapshot: KO on 1998-06-01 (replay:KO.csv): close")


def test_cli_ask_extractive_and_live_absent(monkeypatch):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "ask",
            "--mode",
            "extractive",
            "--json",
            "I have $5,000 for 3 years. Is SPY risky?",
            "What is its volatility?",
        ],
    )
    assert result.exit_code == 0, result.output
    # stdout alone: a model's loading bar goes to stderr when no earlier test has loaded it
    first, second = (json.loads(line) for line in result.stdout.strip().splitlines())
    assert first["state"]["amount"] == 5000.0 and second["state"]["horizon_years"] == 3.0
    assert second["snapshots"][0]["symbol"] == "SPY" and second["grounding"]["ok"]
    assert second["disclaimer"] in second["text"]
    import sys

    monkeypatch.setitem(sys.modules, "yfinance", None)
    live = runner.invoke(app, ["feed", "--live", "SPY"])
    assert live.exit_code != 0 and "optional package 'yfinance'" in str(live.exception)


def test_cli_define_and_terms():
    runner = CliRunner()
    assert "price-to-earnings ratio [glossary]" in runner.invoke(app, ["define", "P/E"]).output
    stats = json.loads(runner.invoke(app, ["terms", "--json"]).output)
    assert stats["entries"] >= 5000


def test_cli_ask_refuses_an_unknown_adapter_and_installs_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DSUITE_REGISTRY", str(tmp_path / "registry"))  # a fresh clone's empty registry
    monkeypatch.delenv("DSUITE_ADAPTERS", raising=False)
    out = invoke_dsuite("finance", "ask", "What is a bond?", "--adapter", "nosuch")
    assert out.returncode == 2 and "No adapter named 'nosuch'" in out.stderr, out.stderr
    assert out.stdout == "" and "answering with the base" not in out.stderr
    out = invoke_dsuite("finance", "ask", "What is a bond?", "--json")
    assert out.returncode == 0, out.stderr
    assert last_json(out.stdout)["answered_by"] == "adapter:finance"  # the shipped copy, not the base


def test_cli_feed_names_the_flag_of_a_negative_option():
    for flag, value in (("--bars", "-5"), ("--tail", "-1"), ("--delay", "-1")):
        out = invoke_dsuite("finance", "feed", "--bars", "3", flag, value)
        assert out.returncode == 2 and f"'{flag}'" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "n_bars" not in out.stderr


def test_cli_extract_says_when_it_finds_nothing():
    out = invoke_dsuite("finance", "extract", "hello there")
    assert out.returncode == 0 and out.stdout.strip() == "No terms, tickers or figures found.", out
    out = invoke_dsuite("finance", "extract", "--json", "hello there")
    assert out.returncode == 0 and last_json(out.stdout) == [], out

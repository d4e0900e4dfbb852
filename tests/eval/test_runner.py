"""The runner: run folders, reports and plots, resume after an interruption, errors, compare."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

import eval as harness
from core_model.errors import DSuiteError
from eval.compare import compare_runs
from eval.data.negex import load as load_negex
from eval.metrics import accuracy, macro_f1
from eval.registry import SystemSpec, Task
from eval.report import load_report
from eval.samples import read_samples

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRIGGERS = re.compile(r"\b(no|not|denies|denied|without|negative for|free of|absence of|ruled out)\b", re.I)


def _negex_rule(examples: list[dict], system: SystemSpec) -> list[dict]:
    """A real NegEx-lite rule: a negation trigger in the six words before the UPPER-CASE target."""
    outputs = []
    for example in examples:
        target = example["concept"].upper().split()[0]
        before = example["sentence"].split(target)[0].split()[-6:]
        negated = bool(TRIGGERS.search(" ".join(before)))
        if system.baseline == "always_affirmed":
            negated = False
        outputs.append({"label": "Negated" if negated else "Affirmed"})
    return outputs


def _labels(examples, outputs):
    return [e["negation"] for e in examples], [o["label"] for o in outputs]


def _score(examples, outputs):
    y_true, y_pred = _labels(examples, outputs)
    return {
        "macro_f1": macro_f1(y_true, y_pred, ["Affirmed", "Negated"]),
        "accuracy": accuracy(y_true, y_pred),
    }


def negation_task(batch_size: int = 8) -> Task:
    return Task(
        name="test.negation_rule",
        dataset="negex_context_annotations",
        description="Negated vs affirmed target in NegEx/ConText sentences, by a trigger rule.",
        load=lambda split: load_negex(),
        predict=_negex_rule,
        score=_score,
        primary_metric="macro_f1",
        baselines=("always_affirmed",),
        labels=_labels,
        batch_size=batch_size,
        needs_model=False,
    )


def test_run_writes_report_samples_and_plots(tmp_path):
    task = negation_task()
    systems = [SystemSpec(), SystemSpec(baseline="always_affirmed")]
    report = harness.run(task, systems, limit=60, out_dir=tmp_path / "run", progress=False)
    run_dir = tmp_path / "run"
    for name in (
        "report.json",
        "report.md",
        "samples.jsonl",
        "run.json",
        "metrics.png",
        "confusion-base.png",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "metrics.png").read_bytes()[:8] == PNG_MAGIC
    assert (run_dir / "confusion-baseline_always_affirmed.png").read_bytes()[:8] == PNG_MAGIC
    # the report's figures equal the metric functions applied to the cached outputs
    examples = load_negex()[:60]
    gold = [e["negation"] for e in examples]
    cached = read_samples(run_dir)
    rule = [cached["base"][e["id"]]["label"] for e in examples]
    assert report.row("base").metrics["accuracy"] == pytest.approx(accuracy(gold, rule))
    assert report.row("baseline:always_affirmed").metrics["accuracy"] == pytest.approx(
        gold.count("Affirmed") / 60
    )
    assert report.row("base").metrics["macro_f1"] > report.row("baseline:always_affirmed").metrics["macro_f1"]
    assert report.row("base").confusion["labels"] == ["Affirmed", "Negated"]
    assert sum(map(sum, report.row("base").confusion["matrix"])) == 60
    markdown = (run_dir / "report.md").read_text()
    assert "| base |" in markdown and "| baseline:always_affirmed |" in markdown
    assert "![metrics](metrics.png)" in markdown and "## Per class: base" in markdown
    assert load_report(run_dir).to_dict() == report.to_dict()


def test_interrupted_run_resumes_to_the_same_report(tmp_path):
    task = negation_task(batch_size=7)
    full = harness.run(task, SystemSpec(), limit=40, seed=3, out_dir=tmp_path / "full", progress=False)

    calls = {"n": 0}

    def dies_on_third_batch(examples, system):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _negex_rule(examples, system)

    flaky = dataclasses.replace(task, predict=dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        harness.run(flaky, SystemSpec(), limit=40, seed=3, out_dir=tmp_path / "resumed", progress=False)
    assert not (tmp_path / "resumed" / "report.json").exists()
    assert len(read_samples(tmp_path / "resumed")["base"]) == 14  # two finished batches kept

    predicted = []

    def counting(examples, system):
        predicted.extend(e["id"] for e in examples)
        return _negex_rule(examples, system)

    resumed = harness.run(
        dataclasses.replace(task, predict=counting), SystemSpec(), limit=40, seed=3,
        out_dir=tmp_path / "resumed", progress=False,
    )  # fmt: skip
    assert len(predicted) == 26  # only the missing examples were predicted
    assert resumed.rows[0].metrics == full.rows[0].metrics
    assert resumed.rows[0].per_class == full.rows[0].per_class
    assert read_samples(tmp_path / "resumed") == read_samples(tmp_path / "full")


def test_resume_refuses_outputs_made_before_the_rules_changed(tmp_path):
    """A rules file the task declares (``depends_on``) changed between two runs into one folder: the cached
    outputs are stale, and the second run says so instead of reporting them; unchanged rules resume."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "triggers.json").write_text('["no"]')
    task = dataclasses.replace(negation_task(), depends_on=(rules,))
    run = dict(limit=10, out_dir=tmp_path / "run", progress=False, plots=False)
    first = harness.run(task, SystemSpec(), **run)
    assert harness.run(task, SystemSpec(), **run).rows[0].metrics == first.rows[0].metrics
    (rules / "triggers.json").write_text('["no", "denies"]')
    with pytest.raises(DSuiteError, match=r"changed since the run began \(rules\).*Start a fresh run folder"):
        harness.run(task, SystemSpec(), **run)


def test_resume_refuses_other_settings_and_ignores_a_torn_last_line(tmp_path):
    task = negation_task()
    harness.run(task, SystemSpec(), limit=10, seed=0, out_dir=tmp_path, progress=False, plots=False)
    with pytest.raises(DSuiteError, match="seed=0, now 1"):
        harness.run(task, SystemSpec(), limit=10, seed=1, out_dir=tmp_path, progress=False)
    with (tmp_path / "samples.jsonl").open("a") as handle:
        handle.write('{"system": "base", "id": "99')  # the process died mid-write
    assert len(read_samples(tmp_path)["base"]) == 10


def test_resume_refuses_outputs_of_other_weights(tmp_path, embedded_base):
    """A folder's cached outputs are reused only for the weights that wrote them: two saved tiny bases (real
    checkpoints, different seeds) under the same label "base" are told apart by their fingerprints."""
    import torch

    from core_model.config import config_from_preset
    from core_model.model import DSuiteForCausalLM

    def saved(seed: int):
        torch.manual_seed(seed)
        folder = tmp_path / f"tiny-{seed}"
        DSuiteForCausalLM(config_from_preset("tiny")).save_pretrained(folder)
        embedded_base.tokenizer.save_pretrained(folder)
        return str(folder)

    first, second = saved(0), saved(1)
    task, run = dataclasses.replace(negation_task(), needs_model=True), tmp_path / "run"
    report = harness.run(task, SystemSpec(base=first), limit=8, out_dir=run, progress=False, plots=False)
    assert json.loads((run / "systems.json").read_text()) == {"base": report.rows[0].fingerprint}
    again = harness.run(task, SystemSpec(base=first), limit=8, out_dir=run, progress=False, plots=False)
    assert again.rows[0].metrics == report.rows[0].metrics
    with pytest.raises(DSuiteError, match="came from other weights"):
        harness.run(task, SystemSpec(base=second), limit=8, out_dir=run, progress=False, plots=False)
    with pytest.raises(DSuiteError, match="is a file"):
        harness.run(task, SystemSpec(base=first), limit=8, out_dir=run / "report.json", progress=False)


def test_run_rejects_bad_input(tmp_path):
    task = negation_task()
    with pytest.raises(DSuiteError, match="no baseline 'oracle'. Its baselines: always_affirmed"):
        harness.run(task, SystemSpec(baseline="oracle"), out_dir=tmp_path)
    with pytest.raises(DSuiteError, match="no split 'dev'"):
        harness.run(task, SystemSpec(), split="dev", out_dir=tmp_path)
    with pytest.raises(DSuiteError, match="limit must be at least 1"):
        harness.run(task, SystemSpec(), limit=0, out_dir=tmp_path)
    with pytest.raises(DSuiteError, match="Unknown task 'nope.task'"):
        harness.run("nope.task")
    duplicated = dataclasses.replace(task, load=lambda split: [{"id": 1}, {"id": 1}])
    with pytest.raises(DSuiteError, match="id '1' repeats"):
        harness.run(duplicated, SystemSpec(), out_dir=tmp_path)
    short = dataclasses.replace(task, predict=lambda examples, system: [])
    with pytest.raises(DSuiteError, match="returned 0 outputs for 5 examples"):
        harness.run(short, SystemSpec(), limit=5, out_dir=tmp_path / "short", progress=False)


def test_compare_runs_tables_deltas_and_plot(tmp_path):
    task = negation_task()
    first = harness.run(task, SystemSpec(baseline="always_affirmed"), limit=30, out_dir=tmp_path / "a",
                        progress=False, plots=False)  # fmt: skip
    second = harness.run(task, SystemSpec(), limit=30, out_dir=tmp_path / "b", progress=False, plots=False)
    result = compare_runs([tmp_path / "a", tmp_path / "b"], out_dir=tmp_path / "cmp")
    assert result.labels == ["a:baseline:always_affirmed", "b:base"]
    delta = second.rows[0].metrics["macro_f1"] - first.rows[0].metrics["macro_f1"]
    assert f"({delta:+.4f})" in result.markdown
    assert (tmp_path / "cmp" / "compare.png").read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(DSuiteError, match="No report.json"):
        compare_runs([tmp_path / "missing", tmp_path / "a"])


def test_report_json_is_plain_json(tmp_path):
    harness.run(negation_task(), SystemSpec(), limit=5, out_dir=tmp_path, progress=False, plots=False)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["task"] == "test.negation_rule" and data["rows"][0]["n"] == 5

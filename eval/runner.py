"""Run a task over one or more systems: deterministic, resumable, with a report folder and plots.

``run(task, systems)`` loads the task's examples, asks each system for outputs batch by batch (cached
in ``samples.jsonl`` as it goes, so an interrupted run resumes where it stopped), scores them and
writes ``report.json``, ``report.md`` and PNG plots into ``runs/eval/<time>-<task>/``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from core_model.errors import DSuiteError
from core_model.paths import REPO_ROOT
from eval.metrics import confusion, per_class_prf
from eval.plots import confusion_matrix_png, metric_bars
from eval.registry import SystemSpec, Task, get_task
from eval.report import Report, SystemResult
from eval.samples import append_samples, read_samples

logger = logging.getLogger(__name__)

RUNS_ENV = "DSUITE_RUNS"
RUN_FILE = "run.json"
SYSTEMS_FILE = "systems.json"  # the fingerprint of each model system whose outputs the folder caches
MAX_STORED_CONFUSION = 50


def runs_root() -> Path:
    """Where eval runs go: ``$DSUITE_RUNS/eval`` (default ``runs/eval`` in the working directory)."""
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser() / "eval"


def new_run_dir(task_name: str, root: Path | None = None) -> Path:
    """A fresh, unique run folder ``<root>/<YYYYmmdd-HHMMSS>-<task>``."""
    root = Path(root) if root else runs_root()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", task_name)
    candidate = root / f"{stamp}-{safe}"
    suffix = 2
    while candidate.exists():
        candidate = root / f"{stamp}-{safe}-{suffix}"
        suffix += 1
    candidate.mkdir(parents=True)
    return candidate


def latest_unfinished(task_name: str, root: Path | None = None) -> Path | None:
    """The newest run folder of ``task_name`` that has a run.json but no report.json, if any."""
    root = Path(root) if root else runs_root()
    if not root.is_dir():
        return None
    found = None
    for folder in sorted(root.iterdir()):
        settings = folder / RUN_FILE
        if settings.is_file() and not (folder / "report.json").is_file():
            try:
                if json.loads(settings.read_text(encoding="utf-8")).get("task") == task_name:
                    found = folder
            except json.JSONDecodeError:
                continue
    return found


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (greedy decoding is deterministic anyway; tasks may sample)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.manual_seed(seed)


def _as_task(task: str | Task) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return get_task(task)
    raise DSuiteError(f"Expected a task name or an eval.Task, got {type(task).__name__}.")


def _systems(task: Task, system: SystemSpec | Sequence[SystemSpec] | None) -> list[SystemSpec]:
    systems = (
        [SystemSpec()] if system is None else [system] if isinstance(system, SystemSpec) else list(system)
    )
    if not systems:
        raise DSuiteError("run: got no systems; pass a SystemSpec (SystemSpec() is the bare base).")
    labels = [s.label for s in systems]
    if len(set(labels)) != len(labels):
        raise DSuiteError(f"run: systems {labels} repeat a label; list each system once.")
    for spec in systems:
        if spec.baseline and spec.baseline not in task.baselines:
            known = ", ".join(task.baselines) or "(none)"
            raise DSuiteError(f"Task {task.name} has no baseline '{spec.baseline}'. Its baselines: {known}.")
        if spec.adapter and not task.needs_model:
            raise DSuiteError(
                f"Task {task.name} never calls the model, so --adapter {spec.adapter} would not change it."
            )
    return systems


def load_examples(task: Task, split: str, limit: int | None) -> list[dict]:
    """The task's examples of ``split`` (first ``limit``), with unique string ids checked."""
    if split not in task.splits:
        raise DSuiteError(f"Task {task.name} has no split '{split}'. Its splits: {', '.join(task.splits)}.")
    if limit is not None and limit < 1:
        raise DSuiteError(f"limit must be at least 1, got {limit}; leave it unset to run every example.")
    examples = list(task.load(split))
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise DSuiteError(f"Task {task.name} loaded no examples for split '{split}'.")
    seen: set[str] = set()
    for index, example in enumerate(examples):
        if not isinstance(example, dict) or "id" not in example:
            raise DSuiteError(
                f"Task {task.name}: example {index} has no 'id'; every example must be a dict with one."
            )
        key = str(example["id"])
        if key in seen:
            raise DSuiteError(f"Task {task.name}: example id '{key}' repeats; ids must be unique.")
        seen.add(key)
    return examples


def content_fingerprint(paths: Sequence[Path]) -> dict[str, str]:
    """A sha256 (16 hex digits) of each file or folder in ``paths`` (keyed by its path, relative to the
    repository when inside it): file names and bytes, folders walked in sorted order."""
    found = {}
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() if file != root else b"")
            digest.update(file.read_bytes() if file.is_file() else b"missing")
        where = root.resolve()  # inside the repository: relative, so a moved checkout keeps its keys
        key = where.relative_to(REPO_ROOT).as_posix() if where.is_relative_to(REPO_ROOT) else str(root)
        found[key] = digest.hexdigest()[:16]
    return found


def _check_settings(run_dir: Path, settings: dict) -> None:
    path = run_dir / RUN_FILE
    if path.is_file():
        previous = json.loads(path.read_text(encoding="utf-8"))
        before, now = previous.get("depends_on"), settings["depends_on"]
        if before is not None and before != now:
            changed = ", ".join(sorted(Path(p).name for p in {*before, *now} if before.get(p) != now.get(p)))
            raise DSuiteError(
                f"Cannot resume {run_dir}: what the task's outputs come from changed since the run began "
                f"({changed}), so the outputs cached there are stale. Start a fresh run folder (leave out "
                "--out) to measure the change."
            )
        for key in ("task", "split", "limit", "seed"):
            if previous.get(key) != settings[key]:
                raise DSuiteError(
                    f"Cannot resume {run_dir}: it was run with {key}={previous.get(key)!r}, now "
                    f"{settings[key]!r}. Use the same settings, or start a fresh run folder."
                )
        if previous.get("example_ids") != settings["example_ids"]:
            raise DSuiteError(
                f"Cannot resume {run_dir}: the task now loads different examples than when the run began "
                "(the data or the loader changed). Start a fresh run folder."
            )
    path.write_text(json.dumps(settings, indent=2, sort_keys=True), encoding="utf-8")


def system_fingerprint(task: Task, spec: SystemSpec) -> str | None:
    """The fingerprint of the weights behind ``spec`` (base, or base + adapter content) for a task that asks
    the model; None for a baseline or a task that never calls the model."""
    if not task.needs_model or spec.baseline:
        return None
    from eval.systems import load_system

    return load_system(spec).fingerprint


def _check_fingerprint(run_dir: Path, label: str, fingerprint: str | None, cached: bool) -> None:
    """Refuse to reuse ``label``'s cached outputs when they came from other weights (another ``--base``, a
    retrained adapter under the same name); record the fingerprint otherwise."""
    if fingerprint is None:
        return
    path = run_dir / SYSTEMS_FILE
    known = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    before = known.get(label)
    if cached and before is not None and before != fingerprint:
        raise DSuiteError(
            f"Cannot resume {run_dir}: the outputs of '{label}' there came from other weights (fingerprint "
            f"{before[:12]}, now {fingerprint[:12]}: another --base, or the adapter was retrained). Start a "
            "fresh run folder (leave out --out), or evaluate the weights the folder was run with."
        )
    if before != fingerprint:
        known[label] = fingerprint
        path.write_text(json.dumps(known, indent=2, sort_keys=True), encoding="utf-8")


def _predict_system(
    task: Task,
    spec: SystemSpec,
    examples: list[dict],
    cached: dict[str, dict],
    run_dir: Path,
    seed: int,
    progress: bool,
) -> float:
    """Fill ``cached`` with the outputs of every example, predicting the missing ones batch by batch."""
    from tqdm.auto import tqdm

    pending = [e for e in examples if str(e["id"]) not in cached]
    seconds = 0.0
    bar = tqdm(
        total=len(examples), initial=len(examples) - len(pending), desc=f"{task.name} [{spec.label}]",
        unit="ex", disable=not progress,
    )  # fmt: skip
    size = max(1, task.batch_size)
    try:
        for start in range(0, len(pending), size):
            batch = pending[start : start + size]
            seed_everything(seed * 1_000_003 + examples.index(batch[0]))
            began = time.perf_counter()
            outputs = task.predict(batch, spec)
            seconds += time.perf_counter() - began
            if len(outputs) != len(batch):
                raise DSuiteError(
                    f"Task {task.name}: predict returned {len(outputs)} outputs for {len(batch)} examples; "
                    "expected one dict per example."
                )
            records = []
            for example, output in zip(batch, outputs, strict=True):
                if not isinstance(output, dict):
                    raise DSuiteError(
                        f"Task {task.name}: predict returned a {type(output).__name__}, expected a dict."
                    )
                output = json.loads(json.dumps(output))  # what the cache will give back on resume
                cached[str(example["id"])] = output
                records.append((str(example["id"]), output))
            append_samples(run_dir, spec.label, records)
            bar.update(len(batch))
    finally:
        bar.close()
    return seconds


def run(
    task: str | Task,
    system: SystemSpec | Sequence[SystemSpec] | None = None,
    limit: int | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    split: str | None = None,
    progress: bool = True,
    plots: bool = True,
) -> Report:
    """Evaluate one task for one or more systems and write the run folder.

    Args:
        task: a registered task name or a ``Task``.
        system: one ``SystemSpec`` or several (their rows end up side by side in one report);
            None means the bare base.
        limit: evaluate only the first ``limit`` examples.
        seed: seeds Python, NumPy and torch before every batch.
        out_dir: the run folder; an existing folder of the same task and settings is resumed
            (its cached outputs are reused). None creates ``runs/eval/<time>-<task>/``.
        split: the split to evaluate; default the task's first split.
        progress: show tqdm progress bars.
        plots: write PNG plots (metric bars, confusion matrices).

    Returns:
        The report (also saved as report.json and report.md in the run folder).
    """
    task = _as_task(task)
    systems = _systems(task, system)
    split = split or task.splits[0]
    examples = load_examples(task, split, limit)
    # the weights first: an unknown adapter or base fails before a run folder is made
    fingerprints = {spec.label: system_fingerprint(task, spec) for spec in systems}
    run_dir = Path(out_dir) if out_dir else new_run_dir(task.name)
    if run_dir.exists() and not run_dir.is_dir():
        raise DSuiteError(
            f"--out {run_dir} is a file; an eval run writes a folder. Name a new folder or a run's."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "task": task.name, "split": split, "limit": limit, "seed": seed,
        "systems": [asdict(s) for s in systems], "example_ids": [str(e["id"]) for e in examples],
        "depends_on": content_fingerprint(task.depends_on),
    }  # fmt: skip
    _check_settings(run_dir, settings)
    cache = read_samples(run_dir)
    rows = []
    for spec in systems:
        cached = cache.setdefault(spec.label, {})
        _check_fingerprint(run_dir, spec.label, fingerprints[spec.label], bool(cached))
        if cached:
            logger.info("%s [%s]: resuming with %d cached outputs", task.name, spec.label, len(cached))
        seconds = _predict_system(task, spec, examples, cached, run_dir, seed, progress)
        outputs = [cached[str(e["id"])] for e in examples]
        rows.append(_score(task, spec, examples, outputs, seconds, fingerprints[spec.label]))
    report = Report(
        task=task.name, dataset=task.dataset, description=task.description, split=split, limit=limit,
        seed=seed, n_examples=len(examples), primary_metric=task.primary_metric, rows=rows,
        run_dir=str(run_dir),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    if plots:
        report.plots = _plot(task, report, examples, cache, run_dir)
    report.save(run_dir)
    logger.info("%s: report in %s", task.name, run_dir)
    return report


def _score(
    task: Task,
    spec: SystemSpec,
    examples: list[dict],
    outputs: list[dict],
    seconds: float,
    fingerprint: str | None,
) -> SystemResult:
    metrics = {k: float(v) for k, v in task.score(examples, outputs).items()}
    if task.primary_metric not in metrics:
        raise DSuiteError(f"Task {task.name}: score returned {sorted(metrics)}, without its primary metric.")
    per_class = matrix = None
    if task.labels is not None:
        y_true, y_pred = task.labels(examples, outputs)
        per_class = {
            str(k): v for k, v in per_class_prf([str(y) for y in y_true], [str(y) for y in y_pred]).items()
        }
        if len(per_class) <= MAX_STORED_CONFUSION:
            names, counts = confusion([str(y) for y in y_true], [str(y) for y in y_pred])
            matrix = {"labels": names, "matrix": counts}
    return SystemResult(
        system=spec.label, spec=asdict(spec), metrics=metrics, n=len(examples), seconds=round(seconds, 3),
        per_class=per_class, confusion=matrix, fingerprint=fingerprint,
    )  # fmt: skip


def _plot(task: Task, report: Report, examples: list[dict], cache: dict, run_dir: Path) -> list[str]:
    names = report.metric_names()
    values = {row.system: row.metrics for row in report.rows}
    files = [metric_bars(f"{task.name} ({report.split}, n={report.n_examples})", list(values), names, values,
                         run_dir / "metrics.png")]  # fmt: skip
    if task.labels is not None:
        for row in report.rows:
            outputs = [cache[row.system][str(e["id"])] for e in examples]
            y_true, y_pred = task.labels(examples, outputs)
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", row.system)
            files.append(confusion_matrix_png(f"{task.name}: {row.system}", y_true, y_pred,
                                              run_dir / f"confusion-{safe}.png"))  # fmt: skip
    return [f.name for f in files]

"""`dsuite eval ...`: list tasks, run them over systems into report folders, compare runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from apps.cli.options import BaseOption, JsonOption

app = typer.Typer(help="Evaluate the base, adapters and baselines on registered tasks.", no_args_is_help=True)


def _registered() -> list[str]:
    import domains
    import eval as harness

    domains.load_all()
    return harness.task_names()


@app.command("list")
def list_tasks(as_json: JsonOption = False) -> None:
    """List every registered task with its data set, splits, baselines and description."""
    from core_model.errors import DSuiteError
    from eval import get_task

    rows = []
    for name in _registered():
        try:
            task = get_task(name)
        except DSuiteError as exc:  # a task whose artifacts are not built yet still shows up
            rows.append({"name": name, "dataset": "?", "splits": [], "baselines": [], "primary_metric": "?",
                         "needs_model": None, "description": f"(unavailable: {exc})"})  # fmt: skip
            continue
        rows.append(
            {
                "name": name,
                "dataset": task.dataset,
                "splits": list(task.splits),
                "baselines": list(task.baselines),
                "primary_metric": task.primary_metric,
                "needs_model": task.needs_model,
                "description": task.description,
            }
        )
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for row in rows:
        baselines = ", ".join(row["baselines"]) or "-"
        splits = ", ".join(row["splits"]) or "-"
        typer.echo(
            f"{row['name']:<28} {row['dataset']:<26} {row['primary_metric']:<18} splits: {splits}; "
            f"baselines: {baselines}"
        )
        typer.echo(f"{'':<28} {row['description']}")


@app.command("run")
def run_tasks(
    tasks: Annotated[list[str], typer.Argument(help="Task names (see `dsuite eval list`).")],
    adapter: Annotated[
        list[str] | None, typer.Option("--adapter", help="Evaluate base+adapter NAME@VERSION (repeatable).")
    ] = None,
    baseline: Annotated[
        list[str] | None, typer.Option("--baseline", help="Evaluate the task's baseline NAME (repeatable).")
    ] = None,
    systems: Annotated[
        str | None, typer.Option("--systems", help="'all': the base plus every baseline of each task.")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N examples.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    split: Annotated[str | None, typer.Option("--split", help="Split (default: the task's first).")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder (one task only); an unfinished one is resumed.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Resume the newest unfinished run of each task.")
    ] = False,
    base: BaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run TASKS for the chosen systems; each task writes runs/eval/<time>-<task>/ with its report.

    With no --adapter/--baseline/--systems the bare base is evaluated. Several systems end up side by
    side in one report. Ctrl-C keeps the finished batches: rerun with --resume to continue.
    """
    from core_model.errors import DSuiteError
    from eval import SystemSpec, get_task, run
    from eval.runner import latest_unfinished

    known = _registered()
    if systems not in (None, "all"):
        raise DSuiteError(f"--systems accepts only 'all', got '{systems}'.")
    if out and len(tasks) > 1:
        raise DSuiteError(
            f"--out names one run folder, but {len(tasks)} tasks were given; run them one by one."
        )
    for name in tasks:
        if name not in known:
            raise DSuiteError(f"Unknown task '{name}'. Registered tasks: {', '.join(known)}.")
    results = []
    for name in tasks:
        task = get_task(name)
        specs = []
        if systems == "all" or not (adapter or baseline):
            specs.append(SystemSpec(base=base))
        specs += [SystemSpec(adapter=a, base=base) for a in adapter or []]
        chosen = list(task.baselines) if systems == "all" else list(baseline or [])
        specs += [SystemSpec(baseline=b, base=base) for b in chosen]
        out_dir = out or (latest_unfinished(name) if resume else None)
        report = run(task, specs, limit=limit, seed=seed, out_dir=out_dir, split=split)
        results.append(report)
        if not as_json:
            typer.echo(f"{name}: {report.run_dir}")
            for row in report.rows:
                cells = ", ".join(f"{k}={v:.4g}" for k, v in row.metrics.items())
                typer.echo(f"  {row.system:<28} {cells}")
    if as_json:
        records = [
            {
                "task": r.task,
                "run_dir": r.run_dir,
                "rows": [{"system": x.system, "metrics": x.metrics} for x in r.rows],
            }
            for r in results
        ]
        typer.echo(json.dumps(records))


@app.command("compare")
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders (runs/eval/<time>-<task>/).")],
    out: Annotated[Path | None, typer.Option("--out", help="Folder for compare.md and compare.png.")] = None,
) -> None:
    """Print a table of the runs' rows with deltas against the first row, and write a plot."""
    from eval.compare import compare_runs

    result = compare_runs(runs, out_dir=out)
    typer.echo(result.markdown.split("![compare]")[0].rstrip())
    typer.echo(f"\nplot: {result.plot}")

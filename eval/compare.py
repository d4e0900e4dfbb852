"""Compare finished runs: one table of every (run, system) row with deltas, and a bar plot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core_model.errors import DSuiteError
from eval.plots import metric_bars
from eval.report import fmt, load_report, markdown_table
from eval.runner import runs_root


@dataclass
class Comparison:
    """Rows ``(label, metrics)`` of several runs, deltas against the first row, and the files written."""

    labels: list[str]
    metrics: list[str]
    values: dict[str, dict[str, float]]
    markdown: str
    out_dir: Path
    plot: Path


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path | None = None) -> Comparison:
    """Put the rows of several finished runs side by side, with deltas against the first row.

    Args:
        run_dirs: run folders written by ``eval.run`` (at least two rows in total across them).
        out_dir: where compare.md and compare.png go; default ``runs/eval/<time>-compare``.

    Raises:
        DSuiteError: a folder has no finished report, or the runs evaluate different tasks' metrics only.
    """
    if not run_dirs:
        raise DSuiteError("compare: got no run folders; pass at least one finished run (two for deltas).")
    reports = [load_report(d) for d in run_dirs]
    labels: list[str] = []
    values: dict[str, dict[str, float]] = {}
    metrics: list[str] = []
    for report in reports:
        for name in report.metric_names():
            if name not in metrics:
                metrics.append(name)
        for row in report.rows:
            label = f"{Path(report.run_dir).name}:{row.system}"
            labels.append(label)
            values[label] = row.metrics
    if len(labels) < 2:
        raise DSuiteError(f"compare: {run_dirs[0]} holds one system only; pass two or more runs to compare.")
    tasks = sorted({r.task for r in reports})
    shared = [m for m in metrics if all(m in values[label] for label in labels)]
    if not shared:
        raise DSuiteError(
            f"compare: the runs ({', '.join(tasks)}) share no metric; compare runs of one task."
        )
    reference = values[labels[0]]
    table = []
    for label in labels:
        cells: list[object] = [label]
        for metric in shared:
            value = values[label][metric]
            delta = value - reference[metric]
            cells.append(fmt(value) if label == labels[0] else f"{fmt(value)} ({delta:+.4f})")
        table.append(cells)
    folder = (
        Path(out_dir) if out_dir else runs_root() / f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-compare"
    )
    folder.mkdir(parents=True, exist_ok=True)
    plot = metric_bars(f"compare: {', '.join(tasks)}", labels, shared, values, folder / "compare.png")
    markdown = "\n".join(
        [
            f"# Comparison: {', '.join(tasks)}",
            "",
            f"Deltas (in brackets) are against the first row, `{labels[0]}`.",
            "",
            markdown_table(["run:system", *shared], table),
            "",
            "![compare](compare.png)",
            "",
        ]
    )
    (folder / "compare.md").write_text(markdown, encoding="utf-8")
    return Comparison(labels, shared, values, markdown, folder, plot)

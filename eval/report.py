"""The result of a run: ``Report`` (one row per system), saved as report.json and report.md."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core_model.errors import DSuiteError

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


@dataclass
class SystemResult:
    """Scores of one system (base, base+adapter or a baseline) on the task.

    Attributes:
        system: the system label (``base``, ``adapter:medical@1``, ``baseline:majority``).
        spec: the ``SystemSpec`` fields.
        metrics: metric name -> value, as the task's ``score`` returned them.
        n: examples scored.
        seconds: wall time of the predictions made in this process (cached ones cost 0).
        per_class: label -> precision/recall/f1/support, for tasks with labels.
        confusion: ``{"labels": [...], "matrix": [[...]]}`` for tasks with labels.
        fingerprint: the model fingerprint (base, or base+adapter hash); None for baselines.
    """

    system: str
    spec: dict
    metrics: dict[str, float]
    n: int
    seconds: float = 0.0
    per_class: dict | None = None
    confusion: dict | None = None
    fingerprint: str | None = None


@dataclass
class Report:
    """One evaluation run of one task over one or more systems."""

    task: str
    dataset: str
    description: str
    split: str
    limit: int | None
    seed: int
    n_examples: int
    primary_metric: str
    rows: list[SystemResult]
    run_dir: str
    created: str
    plots: list[str] = field(default_factory=list)

    def row(self, system: str) -> SystemResult:
        """The row of the system labelled ``system``."""
        for row in self.rows:
            if row.system == system:
                return row
        known = [r.system for r in self.rows]
        raise DSuiteError(f"Report of {self.task} has no system '{system}'; it has {known}.")

    def metric_names(self) -> list[str]:
        """Metric names of all rows, the primary metric first, then in first-seen order."""
        names: list[str] = []
        for row in self.rows:
            names.extend(k for k in row.metrics if k not in names)
        if self.primary_metric in names:
            names.remove(self.primary_metric)
            names.insert(0, self.primary_metric)
        return names

    def to_dict(self) -> dict:
        """A JSON-able dict (what report.json holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """Rebuild a report from ``to_dict`` output."""
        rows = [SystemResult(**row) for row in data["rows"]]
        return cls(**{**data, "rows": rows})

    def save(self, run_dir: Path) -> None:
        """Write report.json and report.md into ``run_dir``."""
        run_dir = Path(run_dir)
        (run_dir / REPORT_JSON).write_text(
            json.dumps(self.to_dict(), indent=2, sort_keys=True), encoding="utf-8"
        )
        (run_dir / REPORT_MD).write_text(render_markdown(self), encoding="utf-8")


def load_report(run_dir: str | Path) -> Report:
    """Read the report of a run folder (or of a report.json path).

    Raises:
        DSuiteError: the folder has no report.json (the run did not finish) or it is malformed.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / REPORT_JSON
    if not path.is_file():
        raise DSuiteError(
            f"No {REPORT_JSON} at '{path}'. Pass a run folder written by `dsuite eval run` "
            "(runs/eval/<time>-<task>/); an interrupted run has none until it is resumed and finishes."
        )
    try:
        return Report.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise DSuiteError(f"{path}: not a report written by `dsuite eval run` ({exc}).") from exc


def fmt(value: object) -> str:
    """A metric value for a table: 4 significant decimals for floats."""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The human-readable report: settings, the metric table (systems side by side), plots, per class."""
    names = report.metric_names()
    parts = [
        f"# {report.task}",
        "",
        report.description,
        "",
        f"- data set: `{report.dataset}` (card: `data_cards/{report.dataset}.md`), split `{report.split}`, "
        f"{report.n_examples} examples" + (f" (limit {report.limit})" if report.limit else ""),
        f"- seed: {report.seed}; created {report.created}",
        f"- primary metric: `{report.primary_metric}`",
        "",
        "## Results",
        "",
        markdown_table(
            ["system", *names, "n", "seconds"],
            [
                [r.system, *[r.metrics.get(n, "") for n in names], r.n, f"{r.seconds:.1f}"]
                for r in report.rows
            ],
        ),
        "",
    ]
    fingerprints = [(r.system, r.fingerprint) for r in report.rows if r.fingerprint]
    if fingerprints:
        parts += ["Model fingerprints: " + ", ".join(f"{s} `{f}`" for s, f in fingerprints), ""]
    if report.plots:
        parts += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in report.plots] + [""]
    for row in report.rows:
        if row.per_class:
            parts += [f"## Per class: {row.system}", ""]
            table = [
                [label, s["precision"], s["recall"], s["f1"], s["support"]]
                for label, s in row.per_class.items()
            ]
            parts += [markdown_table(["label", "precision", "recall", "f1", "support"], table), ""]
    return "\n".join(parts)

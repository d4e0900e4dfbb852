"""The task registry: name -> Task, filled by each domain package (lm-evaluation-harness style).

A task knows how to load its examples, how to ask a system (the base, the base with an adapter, or a
named baseline) for an output per example, and how to score the outputs. The runner (``eval.runner``)
adds caching, resuming, reports and plots; tasks hold no I/O of their own beyond reading their data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core_model.errors import DSuiteError


@dataclass(frozen=True)
class SystemSpec:
    """What answers a task: the model (optionally with an adapter) or a named baseline."""

    adapter: str | None = None  # "name@version" / "name" / None for the bare base
    baseline: str | None = None  # a name from Task.baselines; None means the model
    base: str | None = None  # base checkpoint folder; None = the default base

    @property
    def label(self) -> str:
        if self.baseline:
            return f"baseline:{self.baseline}"
        return f"adapter:{self.adapter}" if self.adapter else "base"


Example = dict
Output = dict


@dataclass(frozen=True)
class Task:
    """One evaluation task.

    Attributes:
        name: registry name, ``<domain>.<task>`` (e.g. ``medical.assertion``).
        dataset: the data card this task reads (``data_cards/<dataset>.md``).
        description: one line for ``dsuite eval list``.
        load: ``load(split) -> examples``; each example is a JSON-able dict with a unique ``"id"``,
            in a deterministic order.
        predict: ``predict(examples, system) -> outputs`` for a batch, one JSON-able dict per example.
        score: ``score(examples, outputs) -> {metric: value}``.
        primary_metric: the metric reports sort and plot first.
        baselines: the baseline names ``predict`` accepts in ``SystemSpec.baseline``.
        splits: the splits ``load`` accepts; the first is the default.
        labels: ``labels(examples, outputs) -> (y_true, y_pred)`` for a confusion matrix, or None.
        batch_size: how many examples ``predict`` receives at once.
        needs_model: False when the task never calls the language model (rules-only tasks).
        depends_on: files or folders besides the model's weights whose content the outputs come from (rules,
            lexicons, trained classifiers); a run folder resumed after they changed is refused, since its
            cached outputs came from the earlier content.
    """

    name: str
    dataset: str
    description: str
    load: Callable[[str], list[Example]]
    predict: Callable[[list[Example], SystemSpec], list[Output]]
    score: Callable[[list[Example], list[Output]], dict[str, float]]
    primary_metric: str
    baselines: Sequence[str] = ()
    splits: Sequence[str] = ("test",)
    labels: Callable[[list[Example], list[Output]], tuple[list, list]] | None = None
    batch_size: int = 8
    needs_model: bool = True
    depends_on: Sequence[Path] = ()
    tags: Sequence[str] = field(default_factory=tuple)


_TASKS: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Register a task factory under ``name`` (the factory runs only when the task is used)."""
    if name in _TASKS and _TASKS[name] is not factory:
        raise DSuiteError(f"Task '{name}' is already registered; pick another name or remove the first.")
    _TASKS[name] = factory


def task_names() -> list[str]:
    """All registered task names, sorted."""
    return sorted(_TASKS)


def get_task(name: str) -> Task:
    """Build the task registered under ``name``.

    Raises:
        DSuiteError: no such task; the message lists the registered ones.
    """
    if name not in _TASKS:
        known = ", ".join(task_names()) or "(none registered)"
        raise DSuiteError(f"Unknown task '{name}'. Registered tasks: {known}. See `dsuite eval list`.")
    task = _TASKS[name]()
    if task.name != name:
        raise DSuiteError(f"Task factory registered as '{name}' built a task named '{task.name}'.")
    return task

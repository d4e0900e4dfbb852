"""Evaluation harness: task registry, runners, metrics, reports.

``eval.run(task, system)`` evaluates a registered task (see ``eval.registry``) and writes a run folder;
``eval.metrics`` holds the metric functions; ``eval.model_io`` helps tasks ask the model.
"""

from eval.registry import SystemSpec, Task, get_task, register_task, task_names
from eval.report import Report, SystemResult, load_report
from eval.runner import run
from eval.tasks import register_builtin_tasks

__all__ = [
    "Report",
    "SystemResult",
    "SystemSpec",
    "Task",
    "get_task",
    "load_report",
    "register_builtin_tasks",
    "register_task",
    "run",
    "task_names",
]

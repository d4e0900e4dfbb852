"""Evaluation harness: task registry, runners, metrics, reports."""

from eval.registry import SystemSpec, Task, get_task, register_task, task_names

__all__ = ["SystemSpec", "Task", "get_task", "register_task", "task_names"]

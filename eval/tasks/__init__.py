"""Tasks the harness registers itself (domain tasks are registered by their domain packages)."""

from eval.registry import register_task
from eval.tasks.perplexity import TASK_NAME as PERPLEXITY_TASK
from eval.tasks.perplexity import build_task as build_perplexity_task


def register_builtin_tasks() -> None:
    """Register the harness's own tasks (idempotent)."""
    register_task(PERPLEXITY_TASK, build_perplexity_task)


register_builtin_tasks()

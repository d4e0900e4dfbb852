"""The finance domain's eval tasks (one module per task); ``register_finance_tasks`` adds them all."""

from __future__ import annotations

from eval.registry import _TASKS, register_task

TASK_MODULES = {
    "finance.sentiment": "domains.finance.tasks.sentiment",
    "finance.tatqa": "domains.finance.tasks.tatqa",
    "finance.terms": "domains.finance.tasks.terms",
    "finance.grounding": "domains.finance.tasks.grounding",
    "finance.define": "domains.finance.tasks.define",
    "finance.indicators": "domains.finance.tasks.indicators",
}


def _factory(module_name: str):
    def build():
        import importlib

        return importlib.import_module(module_name).build_task()

    build.__qualname__ = f"build[{module_name}]"
    return build


_FACTORIES = {name: _factory(module) for name, module in TASK_MODULES.items()}


def register_finance_tasks() -> None:
    """Register every finance task (idempotent; tasks are built only when used)."""
    for name, factory in _FACTORIES.items():
        if _TASKS.get(name) is not factory:
            register_task(name, factory)

"""Customer service: intents with out-of-scope detection, dialog state tracking, FAQ answers, escalation.

The pipeline entry points (what the CLI and the app call) are in ``Domain.pipeline``; the eval tasks
(``cs.*``) are in ``domains.customer_service.tasks``. Heavy modules are imported on first use.
"""

from __future__ import annotations

from pathlib import Path

from domains.registry import Domain, register_domain


def new_session(**kwargs):
    """A ``CustomerServiceSession`` (see ``domains.customer_service.session``)."""
    from domains.customer_service.session import CustomerServiceSession

    return CustomerServiceSession(**kwargs)


def classify_intents(texts: list[str], model: str = "bitext"):
    """Intent predictions (with out-of-scope rejection) from a saved intent model."""
    from domains.customer_service.intents import IntentModel

    return IntentModel.load(model).predict(texts)


def track_state(turns: list[dict]) -> list[dict]:
    """Baseline (rule) states after each user turn of ``[{"system", "user"}]``."""
    from domains.customer_service.rule_tracker import track_dialogue

    return track_dialogue(turns)


def build_training_set(out_path: str | Path, limit: int | None = None) -> Path:
    """The customer-service adapter's training set, as the shipped adapter was trained: the state updates
    and the yes/no candidate decisions of the MultiWOZ dev training dialogues (chat JSONL; ``limit`` caps
    each of the two parts)."""
    from domains.customer_service.dst_training import build_multitask_set

    return build_multitask_set(out_path, limit=limit)


def register_tasks() -> None:
    """Register the ``cs.*`` eval tasks."""
    from domains.customer_service.tasks import register_tasks as register

    register()


DOMAIN = register_domain(
    Domain(
        name="customer_service",
        title="Customer service",
        adapter_name="customer_service",
        description="Support assistant: intents with out-of-scope detection, dialog state, FAQ answers and "
        "escalation to a human agent.",
        pipeline={"session": new_session, "intents": classify_intents, "track": track_state},
        build_training_set=build_training_set,
        register_tasks=register_tasks,
        examples=[
            "I want to cancel order 1234567, it has not shipped yet.",
            "How do I get a refund for a damaged item?",
            "Let me talk to a real person please.",
            "I need a cheap hotel in the centre for 2 nights.",
        ],
    )
)
register_tasks()

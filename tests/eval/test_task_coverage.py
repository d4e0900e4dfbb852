"""Every shared data set is read by at least one registered task, and every registered task builds.

Domain tasks are registered by ``domains.load_all()``. A data set whose domain package is not present
in this checkout is skipped with the reason; once the domain is present, a data set without a task fails
and the message names it.
"""

from __future__ import annotations

import pytest

OWNER = {
    "negex_context_annotations": "medical",
    "codiesp_en": "medical",
    "mtsamples": "medical",
    "fibo_glossary": "finance",
    "financial_phrasebank": "finance",
    "tatqa_test": "finance",
    "ohlcv_daily": "finance",
    "banking77": "customer_service",
    "clinc150_oos": "customer_service",
    "bitext_customer_support": "customer_service",
    "multiwoz": "customer_service",
    "sgd_subset": "customer_service",
}


@pytest.fixture(scope="module")
def registry_state():
    import domains
    from core_model.errors import DSuiteError
    from domains.registry import _DOMAINS
    from eval import get_task, task_names

    try:
        domains.load_all()
        load_error = None
    except Exception as exc:  # reported by test_domains_register_their_tasks; the rest still checks
        load_error = f"{type(exc).__name__}: {exc}"
    loaded = set(_DOMAINS)
    by_dataset: dict[str, list[str]] = {}
    broken: dict[str, str] = {}
    for name in task_names():
        try:
            by_dataset.setdefault(get_task(name).dataset, []).append(name)
        except (DSuiteError, ImportError) as exc:
            broken[name] = f"{type(exc).__name__}: {exc}"
    return loaded, by_dataset, broken, load_error


@pytest.mark.parametrize("dataset", sorted(OWNER))
def test_shared_dataset_has_a_registered_task(dataset, registry_state):
    loaded, by_dataset, broken, _ = registry_state
    if by_dataset.get(dataset):
        return
    if OWNER[dataset] not in loaded:
        pytest.skip(f"{dataset}: its domain '{OWNER[dataset]}' is not present in this checkout yet")
    pytest.fail(
        f"shared data set '{dataset}' has no registered task (Task.dataset == '{dataset}'); "
        f"domain '{OWNER[dataset]}' should register one. Registered by data set: {sorted(by_dataset)}; "
        f"tasks that failed to build: {sorted(broken) or 'none'}"
    )


def test_every_registered_task_builds(registry_state):
    _, _, broken, _ = registry_state
    assert broken == {}, f"task factories that fail to build (artifacts missing?): {broken}"


def test_harness_registers_its_own_task(registry_state):
    _, by_dataset, _, _ = registry_state
    assert "lm.perplexity" in by_dataset["mtsamples"]


def test_domains_register_their_tasks(registry_state):
    load_error = registry_state[3]
    assert load_error is None, f"domains.load_all() failed while registering tasks: {load_error}"

"""Finance advisory: term dictionary and extraction, market feeds with indicators, retrieval, grounded advice.

Everything heavy is imported lazily; importing this package only registers the ``finance`` domain.
"""

from __future__ import annotations

from domains.registry import Domain, register_domain


def _ask(text: str, mode: str = "model", adapter: str | None = "finance"):
    from domains.finance.advisor import FinanceAdvisor

    return FinanceAdvisor(mode=mode, adapter=adapter).ask(text)


def _extract(text: str):
    from domains.finance.extraction import extract

    return extract(text)


def _define(term: str):
    from domains.finance.dictionary import load_dictionary

    return load_dictionary().define(term)


def _advisor(**kwargs):
    from domains.finance.advisor import FinanceAdvisor

    return FinanceAdvisor(**kwargs)


def _build_training_set(out_path, limit=None):
    from domains.finance.training import build_training_set

    return build_training_set(out_path, limit=limit)


def _register_tasks() -> None:
    from domains.finance.tasks import register_finance_tasks

    register_finance_tasks()


DOMAIN = register_domain(
    Domain(
        name="finance",
        title="Finance advisory",
        adapter_name="finance",
        description="Defines finance terms, reads market feeds with indicators, and gives grounded, "
        "disclaimed general advice that remembers your goal, horizon and risk tolerance.",
        pipeline={"ask": _ask, "advisor": _advisor, "extract": _extract, "define": _define},
        build_training_set=_build_training_set,
        register_tasks=_register_tasks,
        examples=[
            "What is a price-to-earnings ratio?",
            "I have $10,000 for retirement in 20 years with low risk tolerance; what about SPY?",
            "What is the RSI of NVDA telling me?",
        ],
    )
)
_register_tasks()

"""The intent data sets the suite trains classifiers on: name -> loader, out-of-scope label, card."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core_model.errors import DSuiteError


@dataclass(frozen=True)
class IntentSet:
    """One intent data set: how to load a split and whether it has out-of-scope examples."""

    name: str
    card: str
    load: Callable[[str], list[dict]]
    has_oos: bool
    extra_tests: tuple[str, ...] = ()  # further test splits ``load`` knows, scored and reported apart


def _banking77(split: str) -> list[dict]:
    from eval.data import banking77

    return banking77.load(split)


def _clinc150(split: str) -> list[dict]:
    from eval.data import clinc150

    return clinc150.load(split)


def _bitext(split: str) -> list[dict]:
    """Bitext's split; train and validation also hold the plain requests borrowed from CLINC150 and
    BANKING77 (``borrowed_intents.py``), whose test rows are the extra split ``plain_test``."""
    from domains.customer_service import borrowed_intents
    from eval.data import bitext

    if split == "plain_test":
        return borrowed_intents.load("test")
    rows = bitext.load(split)
    return rows + borrowed_intents.load(split) if split in ("train", "validation") else rows


INTENT_SETS = {
    "banking77": IntentSet("banking77", "banking77", _banking77, False),
    "clinc150": IntentSet("clinc150", "clinc150_oos", _clinc150, True),
    "bitext": IntentSet("bitext", "bitext_customer_support", _bitext, False, ("plain_test",)),
}


def get_intent_set(name: str) -> IntentSet:
    """The intent data set called ``name``."""
    if name not in INTENT_SETS:
        raise DSuiteError(f"Unknown intent data set '{name}'; expected one of {', '.join(INTENT_SETS)}.")
    return INTENT_SETS[name]

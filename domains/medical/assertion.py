"""Assertion status of given spans (the target concept is known), as the eval task and users call it."""

from __future__ import annotations

import re
from functools import lru_cache

import spacy
from spacy.language import Language

from core_model.errors import DSuiteError
from domains.medical.context import ContextRules, assert_targets
from domains.medical.text import find_sections


@lru_cache(maxsize=2)
def sentence_nlp() -> Language:
    """A blank English pipeline with the clinical section finder and sentence splitter."""
    import domains.medical.text  # noqa: F401  (registers the factories)

    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "dsuite_clinical_tokenizer"}}})
    nlp.add_pipe("dsuite_sections")
    nlp.add_pipe("dsuite_clinical_sentences")
    return nlp


@lru_cache(maxsize=4)
def _rules(path: str | None) -> ContextRules:
    return ContextRules(path)


def find_concept(text: str, concept: str) -> tuple[int, int] | None:
    """Character offsets of ``concept`` in ``text`` (case- and whitespace-insensitive), or None."""
    words = concept.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    match = re.search(pattern, text, flags=re.IGNORECASE)
    return (match.start(), match.end()) if match else None


def assert_concepts(items: list[tuple[str, str]], rules_path: str | None = None) -> list[dict]:
    """Assertion of a given concept in each text.

    Args:
        items: ``(text, concept)`` pairs; the concept should occur in the text.
        rules_path: a ConText rules file; None: the shipped rules.

    Returns:
        One dict per item: ``assertion`` (present, negated, possible, historical, hypothetical, family; None
        when the concept is not in the text), ``modifiers`` (the trigger phrases that applied) and ``found``
        (False when the concept was not in the text: nothing is asserted about it then).

    Raises:
        DSuiteError: an item's text or concept is empty (or blank).
    """
    _check_items(items)
    nlp, rules = sentence_nlp(), _rules(rules_path)
    results = []
    for doc, (text, concept) in zip(nlp.pipe(t for t, _ in items), items, strict=True):
        offsets = find_concept(text, concept)
        span = doc.char_span(*offsets, alignment_mode="expand") if offsets else None
        if span is None:
            results.append({"assertion": None, "modifiers": [], "found": False})
            continue
        doc._.sections = doc._.sections or find_sections(text)
        assert_targets(doc, [span], rules)
        results.append({"assertion": span._.assertion, "modifiers": span._.modifiers, "found": True})
    return results


def assert_concept(text: str, concept: str, rules_path: str | None = None) -> dict:
    """Assertion of one concept in one text (``assert_concepts`` for a single pair; ``found`` False and
    ``assertion`` None when the concept does not occur in the text).

    Raises:
        DSuiteError: the text or the concept is empty.
    """
    return assert_concepts([(text, concept)], rules_path)[0]


def _check_items(items: list[tuple[str, str]]) -> None:
    """Refuse an empty text or concept: nothing can be asserted about it."""
    for number, (text, concept) in enumerate(items):
        which = f" of item {number}" if len(items) > 1 else ""
        for name, value in (("text", text), ("concept", concept)):
            if not isinstance(value, str) or not value.strip():
                raise DSuiteError(
                    f"The {name}{which} is empty. Give a sentence or note and a condition phrase that occurs "
                    "in it, e.g. text 'Patient denies chest pain.' and concept 'chest pain'."
                )

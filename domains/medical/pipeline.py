"""The medical spaCy pipeline: sections, clinical sentences, condition mentions and their assertion status.

Every step is a registered spaCy factory, so users can add them to their own ``nlp``::

    import spacy, domains.medical.pipeline  # registers the factories
    nlp = spacy.blank("en")
    for name in ("dsuite_sections", "dsuite_clinical_sentences", "dsuite_conditions", "dsuite_context"):
        nlp.add_pipe(name)
    doc = nlp("Denies chest pain. Mother had breast cancer.")
    [(s.text, s._.assertion, s._.icd_codes) for s in doc.spans["conditions"]]
"""

from __future__ import annotations

from functools import lru_cache

import spacy
from spacy.language import Language

import domains.medical.context  # noqa: F401  (registers dsuite_context)
import domains.medical.terms  # noqa: F401  (registers dsuite_conditions)
import domains.medical.text  # noqa: F401  (registers dsuite_sections, dsuite_clinical_sentences)

PIPE_NAMES = ("dsuite_sections", "dsuite_clinical_sentences", "dsuite_conditions", "dsuite_context")


def build_nlp(rules_path: str | None = None) -> Language:
    """A blank English pipeline with the four medical components.

    Args:
        rules_path: a ConText rules JSON file to use instead of the shipped one.
    """
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "dsuite_clinical_tokenizer"}}})
    nlp.max_length = 2_000_000
    nlp.add_pipe("dsuite_sections")
    nlp.add_pipe("dsuite_clinical_sentences")
    nlp.add_pipe("dsuite_conditions")
    nlp.add_pipe("dsuite_context", config={"rules_path": rules_path})
    return nlp


@lru_cache(maxsize=1)
def default_nlp() -> Language:
    """The shipped pipeline, built once per process."""
    return build_nlp()

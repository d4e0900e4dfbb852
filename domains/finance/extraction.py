"""Finance term extraction: a spaCy pipeline with a dictionary phrase matcher plus tickers, money,
percentages and dates (all rules in ``data/finance/extraction_rules.json``).

``extract(text)`` returns ``Mention``s; ``finance_nlp()`` is the ``spacy.blank("en")`` pipeline with the
``finance_terms`` component, whose spans land in ``doc.ents`` (label ``TERM`` with the entry's ref as
``kb_id_``, or ``TICKER``/``MONEY``/``PERCENT``/``DATE``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache

from core_model.errors import DSuiteError
from domains.finance.dictionary import GLOSSARY_REF, Term, TermDictionary, load_dictionary

logger = logging.getLogger(__name__)

RULES_FILE = "extraction_rules.json"
ENTITY_LABELS = ("TERM", "TICKER", "MONEY", "PERCENT", "DATE")
RULES_SCHEMA = {
    "type": "object",
    "required": [
        "fibo_kinds",
        "min_term_chars",
        "exclude_terms",
        "tickers",
        "patterns",
        "case_sensitive_labels",
    ],
    "properties": {
        "fibo_kinds": {"type": "array", "items": {"type": "string"}},
        "min_term_chars": {"type": "integer", "minimum": 1},
        "exclude_terms": {"type": "array", "items": {"type": "string"}},
        "tickers": {"type": "array", "items": {"type": "string", "pattern": "^[A-Z.^]{1,7}$"}},
        "patterns": {
            "type": "object",
            "propertyNames": {"enum": ["TICKER", "MONEY", "PERCENT", "DATE"]},
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "case_sensitive_labels": {"type": "array", "items": {"type": "string"}},
    },
}


@dataclass(frozen=True)
class Mention:
    """One extracted span: character offsets, label, and for terms the dictionary entry's ref."""

    text: str
    start: int
    end: int
    label: str
    ref: str = ""
    term: str = ""

    def to_dict(self) -> dict:
        """A JSON-able view."""
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "label": self.label,
            "ref": self.ref,
            "term": self.term,
        }


@lru_cache(maxsize=1)
def load_rules() -> dict:
    """The extraction rules, schema-checked, with every regex compiled once to catch errors early."""
    from domains.finance.resources import validated_json

    rules = validated_json(RULES_FILE, RULES_SCHEMA)
    for label, patterns in rules["patterns"].items():
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise DSuiteError(f"{RULES_FILE}: bad {label} regex {pattern!r}: {exc}.") from exc
    return rules


def _plural(word: str) -> str:
    if re.search(r"(s|x|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _variants(form: str) -> set[str]:
    """A surface form, its hyphen-free spelling, and their plurals (of the last word)."""
    forms = {form, re.sub(r"-", " ", form)}
    out = set(forms)
    for item in forms:
        head, _, last = item.rpartition(" ")
        if last and last[-1].isalpha():
            out.add(f"{head} {_plural(last)}".strip())
    return out


def _is_abbreviation(form: str) -> bool:
    letters = [c for c in form if c.isalpha()]
    return bool(letters) and sum(c.isupper() for c in letters) >= max(2, len(letters) - 1) and len(form) <= 8


def extractable_terms(dictionary: TermDictionary, rules: dict) -> list[Term]:
    """The entries the matcher looks for: every glossary entry and FIBO entries of the configured kinds."""
    kinds = set(rules["fibo_kinds"])
    return [t for t in dictionary.terms if t.source == "glossary" or t.kind in kinds]


class FinanceTermComponent:
    """spaCy component: dictionary phrase matching plus rule patterns, written to ``doc.ents``."""

    def __init__(self, nlp, dictionary: TermDictionary, rules: dict) -> None:
        from spacy.matcher import PhraseMatcher

        self.rules = rules
        self.refs: dict[str, Term] = {}
        exclude = {f.lower() for f in rules["exclude_terms"]}
        lower = PhraseMatcher(nlp.vocab, attr="LOWER")
        exact = PhraseMatcher(nlp.vocab, attr="ORTH")
        lower_forms: dict[str, set[str]] = {}
        exact_forms: dict[str, set[str]] = {}
        for entry in extractable_terms(dictionary, rules):
            key = entry.ref or entry.term
            if key in self.refs:
                continue
            self.refs[key] = entry
            for form in entry.surface_forms:
                if len(form) < rules["min_term_chars"] and not _is_abbreviation(form):
                    continue
                if form.lower() in exclude or re.match(r"^(has|is|was|hasa?) ", form):
                    continue
                target = exact_forms if _is_abbreviation(form) else lower_forms
                target.setdefault(key, set()).update(_variants(form))
        for matcher, forms in ((lower, lower_forms), (exact, exact_forms)):
            for key, variants in forms.items():
                matcher.add(key, list(nlp.tokenizer.pipe(sorted(variants))))
        self.matchers = (lower, exact)
        self.tickers = set(rules["tickers"])
        self.regexes = [
            (label, re.compile(p, 0 if label in rules["case_sensitive_labels"] else re.IGNORECASE))
            for label, patterns in rules["patterns"].items()
            for p in patterns
        ]
        keys = len(lower_forms) + len(exact_forms)
        logger.info("finance_terms: %d entries, %d phrase keys", len(self.refs), keys)

    def __call__(self, doc):
        from spacy.tokens import Span
        from spacy.util import filter_spans

        spans = []
        for label, regex in self.regexes:
            group = "span" if "span" in regex.groupindex else 0
            for match in regex.finditer(doc.text):
                start, end = match.span(group)
                span = doc.char_span(start, end, label=label, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
        for token in doc:
            if token.text in self.tickers:
                spans.append(Span(doc, token.i, token.i + 1, label="TICKER"))
        for matcher in self.matchers:
            for match_id, start, end in matcher(doc):
                key = doc.vocab.strings[match_id]
                spans.append(Span(doc, start, end, label="TERM", kb_id=key))
        doc.ents = filter_spans(spans)
        return doc


@lru_cache(maxsize=1)
def finance_nlp():
    """The finance spaCy pipeline (blank English tokenizer + ``finance_terms``), built once per process."""
    import spacy
    from spacy.language import Language

    if not Language.has_factory("finance_terms"):

        @Language.factory("finance_terms")
        def _make(nlp, name):  # noqa: ARG001 - spaCy's factory signature
            return FinanceTermComponent(nlp, load_dictionary(), load_rules())

    nlp = spacy.blank("en")
    nlp.add_pipe("finance_terms")
    return nlp


def extract(text: str) -> list[Mention]:
    """Finance terms, tickers, money amounts, percentages and dates in ``text``, in text order."""
    if not isinstance(text, str):
        raise DSuiteError(f"extract() needs a string, got {type(text).__name__}.")
    nlp = finance_nlp()
    component = nlp.get_pipe("finance_terms")
    doc = nlp(text)
    mentions = []
    for ent in doc.ents:
        entry = component.refs.get(ent.kb_id_) if ent.label_ == "TERM" else None
        mentions.append(
            Mention(
                ent.text,
                ent.start_char,
                ent.end_char,
                ent.label_,
                ref=entry.ref if entry else "",
                term=entry.term if entry else "",
            )
        )
    return mentions


def names_finance(texts: list[str]) -> list[bool]:
    """Whether each text names a security (a listed or ``$``-marked ticker) or a term of the project's own
    glossary (plain-language investing terms such as "limit order" or "Roth IRA").

    The hub's domain router sends such a request to the advisor when its exemplars would leave it to the base
    (``domains.routing``). FIBO's wider vocabulary does not count: it shares words such as "name" or "daily"
    with everyday requests.
    """

    def named(m: Mention) -> bool:
        return m.label == "TICKER" or (m.label == "TERM" and m.ref.startswith(GLOSSARY_REF))

    return [any(named(m) for m in extract(text)) for text in texts]

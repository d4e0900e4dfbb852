"""The finance term dictionary: FIBO concepts (read in place) merged with the project's retail glossary.

One lookup API over terms, synonyms and abbreviations: ``TermDictionary.lookup("P/E")`` finds the
price-to-earnings ratio. Keys are normalised (case, hyphens, spacing); abbreviations also match as written.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

GLOSSARY_FILE = "glossary.jsonl"
GLOSSARY_SCHEMA = "glossary.schema.json"
GLOSSARY_REF = "glossary:"  # the ref of a glossary entry is this prefix and its term


# FIBO kinds that name a concept ("mortgage", "hedge fund"); its properties ("has goal", "is seasoned") and
# individuals (a currency, a country's jurisdiction, a bank's identifier) do not
CONCEPT_KINDS = frozenset({"class"})


@dataclass(frozen=True)
class Term:
    """One dictionary entry.

    Attributes:
        term: the preferred label.
        definition: its definition.
        synonyms: other names.
        abbreviations: short forms (``ETF``).
        source: ``glossary`` (the project's own) or ``fibo``.
        kind: FIBO kind (``class``, ``individual``...) or the glossary category.
        ref: a stable reference (FIBO IRI or ``glossary:<term>``) answers cite.
    """

    term: str
    definition: str
    synonyms: tuple[str, ...] = ()
    abbreviations: tuple[str, ...] = ()
    source: str = "glossary"
    kind: str = ""
    ref: str = ""

    @property
    def is_concept(self) -> bool:
        """A glossary entry or a FIBO concept (``CONCEPT_KINDS``): what a user asks about or is told about."""
        return self.source != "fibo" or self.kind in CONCEPT_KINDS

    @property
    def surface_forms(self) -> tuple[str, ...]:
        """The term, its synonyms and abbreviations."""
        return (self.term, *self.synonyms, *self.abbreviations)

    def to_dict(self) -> dict:
        """A JSON-able view."""
        return {
            "term": self.term,
            "definition": self.definition,
            "synonyms": list(self.synonyms),
            "abbreviations": list(self.abbreviations),
            "source": self.source,
            "kind": self.kind,
            "ref": self.ref,
        }


def normalize(text: str) -> str:
    """Lookup key: lower case, hyphens/underscores as spaces, single spaces, no trailing punctuation."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"[-_]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(".,;:!?")


@dataclass
class TermDictionary:
    """All terms with an index from every normalised surface form to its entries."""

    terms: list[Term]
    _index: dict[str, list[Term]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for entry in self.terms:
            for form in entry.surface_forms:
                bucket = self._index.setdefault(normalize(form), [])
                if entry not in bucket:
                    bucket.append(entry)
        for bucket in self._index.values():  # the project's glossary first, then FIBO classes
            bucket.sort(key=lambda t: (t.source != "glossary", t.kind != "class"))

    def __len__(self) -> int:
        return len(self.terms)

    def lookup(self, text: str) -> list[Term]:
        """Entries whose term, synonym or abbreviation matches ``text`` (glossary entries first)."""
        return list(self._index.get(normalize(text), []))

    def define(self, text: str) -> Term:
        """The best entry for ``text``.

        Raises:
            DSuiteError: no entry; the message suggests close terms.
        """
        found = self.lookup(text)
        if found:
            return found[0]
        key = normalize(text)
        close = [k for k in self._index if key and (key in k or k in key)][:5]
        hint = f" Close terms: {', '.join(close)}." if close else ""
        raise DSuiteError(
            f"No dictionary entry for {text!r}.{hint} Try `dsuite finance define` with another term."
        )

    def stats(self) -> dict:
        """How many entries, from where, and how many distinct surface forms."""
        by_source: dict[str, int] = {}
        for entry in self.terms:
            by_source[entry.source] = by_source.get(entry.source, 0) + 1
        with_definition = sum(1 for t in self.terms if t.definition.strip())
        return {
            "entries": len(self.terms),
            "with_definition": with_definition,
            "by_source": by_source,
            "distinct_terms": len({normalize(t.term) for t in self.terms}),
            "surface_forms": len(self._index),
        }


def load_glossary() -> list[Term]:
    """The project's retail glossary (``data/finance/glossary.jsonl``), schema-validated."""
    from domains.finance.resources import validated_jsonl

    return [
        Term(
            term=r["term"],
            definition=r["definition"],
            synonyms=tuple(r["synonyms"]),
            abbreviations=tuple(r["abbreviations"]),
            source="glossary",
            kind=r["category"],
            ref=f"{GLOSSARY_REF}{r['term']}",
        )
        for r in validated_jsonl(GLOSSARY_FILE, GLOSSARY_SCHEMA)
    ]


def load_fibo() -> list[Term]:
    """FIBO concept terms from the shared data set, read in place."""
    from eval.data.fibo import load_fibo_terms

    return [
        Term(
            term=r["term"],
            definition=r["definition"],
            synonyms=tuple(r.get("synonyms") or ()),
            abbreviations=tuple(r.get("abbreviations") or ()),
            source="fibo",
            kind=r.get("kind", ""),
            ref=r.get("source_iri", ""),
        )
        for r in load_fibo_terms()
    ]


@lru_cache(maxsize=1)
def load_dictionary() -> TermDictionary:
    """The merged dictionary (cached per process)."""
    dictionary = TermDictionary(load_glossary() + load_fibo())
    logger.info("finance dictionary: %s", dictionary.stats())
    return dictionary

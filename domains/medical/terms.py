"""The condition term index: ICD-10-CM descriptions, inclusion terms and synonyms -> codes, and its matcher.

Terms are tokenised with the same spaCy tokenizer as notes and normalised (lower case, a plural ``s``
dropped), so matching is a dictionary lookup of token n-grams, longest first. Variants of a description
drop bracketed parts and "unspecified"/"not specified"/"NOS" qualifiers ("Fever, unspecified" -> "fever").
The index is built from ``simple-icd-10-cm`` and ``data/medical/condition_synonyms.json`` and cached as
JSON in the suite's cache folder (a few seconds to rebuild).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from functools import lru_cache

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.tokens import Doc, Span

from core_model.paths import dsuite_home
from domains.medical.abbreviations import abbreviations
from domains.medical.artifacts import write_json
from domains.medical.icd_codes import all_codes, describe, inclusion_terms, package_version
from domains.medical.resources import MEDICAL_DATA, SYNONYMS, load_validated
from domains.medical.text import in_known_header, token_texts, tokenizer

log = logging.getLogger(__name__)
MAX_TERM_TOKENS = 10
TERMS_FORMAT = "2"  # bump when tokenisation or variant rules change (part of the cache key)
_BRACKETS = re.compile(r"\s*[\[(][^\])]*[\])]")
_QUALIFIER = re.compile(
    r",?\s*\b(unspecified|not specified|not elsewhere classified|nos)\b.*$", re.IGNORECASE
)
_NOT_ALONE = STOP_WORDS | {
    "other",
    "specified",
    "unspecified",
    "disorder",
    "disease",
    "condition",
    "history",
    "type",
    "left",
    "right",
    "part",
    "site",
    "finding",
    "status",
    "use",
    "problem",
}

if not Span.has_extension("icd_codes"):
    Span.set_extension("icd_codes", default=None)


@lru_cache(maxsize=1 << 18)
def normalize_token(word: str) -> str:
    """Lower case; a plural ``s`` dropped from words longer than 3 letters (not ``-ss``, ``-us``, ``-is``)."""
    word = word.lower()
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) and word.isalpha():
        return word[:-1]
    return word


def term_key(text: str) -> str:
    """The lookup key of a phrase: normalised tokens joined by spaces."""
    return " ".join(normalize_token(t.text) for t in tokenizer()(text) if not t.is_space)


def variants(description: str) -> set[str]:
    """Surface variants of an ICD-10-CM description or inclusion term."""
    out = {description}
    plain = _BRACKETS.sub("", description).strip()
    out.add(plain)
    out.add(_QUALIFIER.sub("", plain).strip(" ,"))
    return {v for v in out if len(v) >= 3}


@lru_cache(maxsize=1)
def _synonyms() -> list[dict]:
    """The entries of ``condition_synonyms.json`` (validated, read once per process)."""
    return load_validated(SYNONYMS, MEDICAL_DATA / "condition_synonyms.schema.json")["synonyms"]


def synonym_codes() -> list[str]:
    """Every code named in the synonyms file."""
    return [code for item in _synonyms() for code in item["codes"]]


@lru_cache(maxsize=1)
def assigned_codes() -> dict[str, str]:
    """Term key -> the code a synonym marked ``assign`` always gets (``condition_synonyms.json``)."""
    return {term_key(item["term"]): item["codes"][0] for item in _synonyms() if item.get("assign")}


@lru_cache(maxsize=1)
def _abbreviation_spellings() -> dict[str, frozenset[str]]:
    """Lower-cased abbreviation -> the spellings ``abbreviations.json`` gives it ("afib" -> AFib, Afib)."""
    spellings: dict[str, set[str]] = {}
    for short in abbreviations():
        spellings.setdefault(short.lower(), set()).add(short)
    return {key: frozenset(shorts) for key, shorts in spellings.items()}


def assigned_code(mention: str) -> str | None:
    """The code of the synonym marked ``assign`` that ``mention`` names, or None. An abbreviation counts only
    written as ``abbreviations.json`` writes it: "MI" is an infarction, the "Mi-2" of an antibody is not."""
    key = term_key(mention)
    code = assigned_codes().get(key)
    if code is None:
        return None
    spellings = _abbreviation_spellings().get(key)
    return code if spellings is None or mention.strip() in spellings else None


def _source_hash() -> str:
    digest = hashlib.sha256(SYNONYMS.read_bytes())
    digest.update(package_version().encode())
    digest.update(TERMS_FORMAT.encode())
    return digest.hexdigest()[:16]


def build_terms() -> dict[str, list[str]]:
    """Term key -> codes (most general first), from descriptions, inclusion terms and synonyms."""
    table: dict[str, list[str]] = {}

    def add(text: str, code: str) -> None:
        key = term_key(text)
        words = key.split()
        if (
            not words
            or len(words) > MAX_TERM_TOKENS
            or all(w in _NOT_ALONE or not w.isalnum() for w in words)
        ):
            return
        codes = table.setdefault(key, [])
        if code not in codes:
            codes.append(code)

    for item in _synonyms():
        for code in item["codes"]:
            add(item["term"], code)
    includes = inclusion_terms()
    for code in all_codes():
        for text in variants(describe(code)):
            add(text, code)
        for text in includes.get(code, ()):
            for variant in variants(text):
                add(variant, code)
    return table


@lru_cache(maxsize=1)
def load_terms() -> dict[str, list[str]]:
    """The term index, from the cache when its sources have not changed."""
    path = dsuite_home() / "medical" / f"icd_terms_{_source_hash()}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    log.info("building the ICD-10-CM term index (once)")
    table = build_terms()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, table)
    return table


class TermMatcher:
    """Longest-match dictionary lookup of condition terms over a doc's tokens."""

    def __init__(self, table: dict[str, list[str]] | None = None) -> None:
        self.table = table if table is not None else load_terms()
        self.lengths: dict[str, list[int]] = {}
        for key in self.table:
            words = key.split(" ")
            self.lengths.setdefault(words[0], []).append(len(words))
        for first, lens in self.lengths.items():
            self.lengths[first] = sorted(set(lens), reverse=True)

    def __call__(self, doc: Doc) -> list[Span]:
        """Non-overlapping condition spans, each with ``span._.icd_codes`` set."""
        words = [normalize_token(w) for w in token_texts(doc)]
        spans, i, n = [], 0, len(words)
        while i < n:
            matched = 0
            for length in self.lengths.get(words[i], ()):
                if i + length <= n:
                    key = " ".join(words[i : i + length])
                    if key in self.table:
                        matched = length
                        break
            if matched:
                span = Span(doc, i, i + matched, label="CONDITION")
                span._.icd_codes = list(self.table[" ".join(words[i : i + matched])])
                spans.append(span)
                i += matched
            else:
                i += 1
        return spans


class ConditionsComponent:
    """spaCy component ``dsuite_conditions``: condition mentions into ``doc.spans[spans_key]``."""

    def __init__(self, spans_key: str) -> None:
        self.matcher = TermMatcher()
        self.spans_key = spans_key

    def __call__(self, doc: Doc) -> Doc:
        doc.spans[self.spans_key] = [
            span for span in self.matcher(doc) if not in_known_header(doc, span.start_char, span.end_char)
        ]
        return doc


@Language.factory("dsuite_conditions", default_config={"spans_key": "conditions"})
def make_conditions(nlp: Language, name: str, spans_key: str) -> ConditionsComponent:
    """Factory of the condition matcher."""
    return ConditionsComponent(spans_key)

"""Clinical text basics: the tokenizer, section headers and sentence boundaries as spaCy components.

``dsuite_sections`` finds section headers (``PAST MEDICAL HISTORY:``, MTSamples' ``,PLAN:,``) from
``data/medical/sections.json`` and stores ``doc._.sections`` as ``(start_char, end_char, name, assertion)``;
``dsuite_clinical_sentences`` then starts a sentence at each header, after ``. ! ?``, after a line break and
after a list number, which suits notes better than spaCy's punctuation-only sentencizer.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from domains.medical.resources import MEDICAL_DATA, SECTIONS, load_validated

if not Doc.has_extension("sections"):
    Doc.set_extension("sections", default=None)

_HEADER = re.compile(r"(?:^|(?<=[\n,.;])|(?<=\s{2}))[ \t]*([A-Za-z][A-Za-z/&\- ]{0,48}[A-Za-z])[ \t]*:")
_END = {".", "!", "?"}


@lru_cache(maxsize=1)
def tokenizer():
    """spaCy's English rule-based tokenizer (shared, stateless)."""
    return spacy.blank("en").tokenizer


@lru_cache(maxsize=4)
def _section_table(path: str) -> dict[str, tuple[str, str | None]]:
    data = load_validated(Path(path), MEDICAL_DATA / "sections.schema.json")
    table = {}
    for section in data["sections"]:
        for header in section["headers"]:
            table[" ".join(header.lower().split())] = (section["name"], section.get("assertion"))
    return table


def find_sections(text: str, sections_path: str | None = None) -> list[tuple[int, int, str, str | None]]:
    """Section spans of a note: ``(start_char, end_char, name, default assertion)``, in text order.

    Known headers come from the sections file; an unknown header written in capitals starts a section named
    ``other``. Text before the first header is in section ``none``.
    """
    table = _section_table(str(sections_path or SECTIONS))
    starts: list[tuple[int, str, str | None]] = [(0, "none", None)]
    for match in _HEADER.finditer(text):
        header = " ".join(match.group(1).lower().split())
        if header in table:
            name, assertion = table[header]
        elif match.group(1).isupper() and len(header) > 2:
            name, assertion = "other", None
        else:
            continue
        starts.append((match.start(1), name, assertion))
    spans = []
    for index, (start, name, assertion) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        if end > start:
            spans.append((start, end, name, assertion))
    return spans


def section_at(doc: Doc, char: int) -> tuple[str, str | None]:
    """The ``(section name, default assertion)`` holding character ``char`` of ``doc``."""
    sections = doc._.sections
    if not sections:
        return "none", None
    index = bisect.bisect_right([s[0] for s in sections], char) - 1
    if index < 0:
        return "none", None
    return sections[index][2], sections[index][3]


def section_assertion(doc: Doc, char: int) -> str | None:
    """The default assertion of the section holding character ``char`` (None for most sections)."""
    return section_at(doc, char)[1]


class SectionsComponent:
    """spaCy component ``dsuite_sections``."""

    def __init__(self, sections_path: str | None) -> None:
        self.sections_path = sections_path

    def __call__(self, doc: Doc) -> Doc:
        doc._.sections = find_sections(doc.text, self.sections_path)
        return doc


@Language.factory("dsuite_sections", default_config={"sections_path": None})
def make_sections(nlp: Language, name: str, sections_path: str | None) -> SectionsComponent:
    """Factory of the section finder."""
    return SectionsComponent(sections_path)


class ClinicalSentences:
    """spaCy component ``dsuite_clinical_sentences`` (run after ``dsuite_sections``)."""

    def __call__(self, doc: Doc) -> Doc:
        header_starts = {s[0] for s in (doc._.sections or [])}
        previous = None
        for token in doc:
            if previous is None:
                token.is_sent_start = True
            else:
                token.is_sent_start = bool(
                    (previous.text in _END and token.text not in _END)
                    or "\n" in previous.whitespace_ or (previous.is_space and "\n" in previous.text)
                    or token.idx in header_starts
                    or (previous.text == ":" and token.idx - previous.idx > 1 and not token.is_punct)
                )
            previous = token
        return doc


@Language.factory("dsuite_clinical_sentences")
def make_sentences(nlp: Language, name: str) -> ClinicalSentences:
    """Factory of the clinical sentence splitter."""
    return ClinicalSentences()

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

import numpy
import spacy
from spacy.attrs import IDX, ORTH, SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from domains.medical.resources import MEDICAL_DATA, SECTIONS, load_validated

if not Doc.has_extension("sections"):
    Doc.set_extension("sections", default=None)

_HEADER = re.compile(r"(?:^|(?<=[\n,.;])|(?<=\s{2}))[ \t]*([A-Za-z][A-Za-z/&\- ]{0,48}[A-Za-z])[ \t]*:")
_END = {".", "!", "?"}
_TEXTS_KEY = "dsuite_token_texts"
_TEXT_KEY = "dsuite_text"
NO_SECTION = "none"  # the section of text before any heading the sections file knows
_BOUNDS_KEY = "dsuite_sent_bounds"
_SECTION_STARTS_KEY = "dsuite_section_starts"
_KNOWN_HEADERS_KEY = "dsuite_known_headers"


_TOKEN = re.compile(r"[A-Za-z]+|\d+(?:[.,]\d+)*|[^\sA-Za-z\d]")
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms st vs no approx etc fig mg ml cm mm kg dl pt pts e g i b d t q h p o x y a m".split()
)


class ClinicalTokenizer:
    """A fast regex tokenizer for notes: runs of letters, numbers (``3.5``, ``1,200``) and single symbols.

    Keeps ``h/o``, ``s/p``, ``Dr.`` as separate pieces (rules are tokenised the same way), never merges
    words across punctuation, and is several times faster than spaCy's affix-based tokenizer.
    """

    def __init__(self, vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        words: list[str] = []
        spaces: list[bool] = []
        position = 0
        for match in _TOKEN.finditer(text):
            gap = text[position : match.start()]
            if gap:
                if words and gap[0] == " ":
                    spaces[-1] = True
                    gap = gap[1:]
                if gap:
                    words.append(gap)
                    spaces.append(False)
            words.append(match.group())
            spaces.append(False)
            position = match.end()
        tail = text[position:]
        if tail:
            if words and tail[0] == " ":
                spaces[-1] = True
                tail = tail[1:]
            if tail:
                words.append(tail)
                spaces.append(False)
        doc = Doc(self.vocab, words=words, spaces=spaces)
        doc.user_data[_TEXTS_KEY] = words
        doc.user_data[_TEXT_KEY] = text
        return doc

    def pipe(self, texts, batch_size: int = 1000):
        for text in texts:
            yield self(text)

    def to_bytes(self, **kwargs) -> bytes:
        return b""

    def from_bytes(self, data: bytes, **kwargs) -> ClinicalTokenizer:
        return self

    def to_disk(self, path, **kwargs) -> None:
        return None

    def from_disk(self, path, **kwargs) -> ClinicalTokenizer:
        return self


@lru_cache(maxsize=1)

def tokenizer() -> ClinicalTokenizer:
    """The clinical tokenizer on a blank English vocabulary (shared)."""
    return ClinicalTokenizer(spacy.blank("en").vocab)


@spacy.registry.tokenizers("dsuite_clinical_tokenizer")
def make_clinical_tokenizer():
    """Registered tokenizer factory: ``[nlp.tokenizer] @tokenizers = "dsuite_clinical_tokenizer"``."""

    def create(nlp: Language) -> ClinicalTokenizer:
        return ClinicalTokenizer(nlp.vocab)

    return create


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
    return _scan_sections(text, sections_path)[0]


def _scan_sections(text: str, sections_path: str | None):
    """``(find_sections' spans, (start_char, end_char) of each header the sections file knows)``."""
    table = _section_table(str(sections_path or SECTIONS))
    starts: list[tuple[int, str, str | None]] = [(0, NO_SECTION, None)]
    known: list[tuple[int, int]] = []
    for match in _HEADER.finditer(text):
        header = " ".join(match.group(1).lower().split())
        if header in table:
            name, assertion = table[header]
            known.append((match.start(1), match.end(1)))
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
    return spans, known


def blank_known_headers(doc: Doc, text: str) -> str:
    """``text`` (the doc's own) with each header the sections file knows replaced by spaces: the offsets stay,
    the header words ("HISTORY OF PRESENT ILLNESS") no longer read as findings."""
    starts, ends = doc.user_data.get(_KNOWN_HEADERS_KEY, ((), ()))
    if not starts:
        return text
    parts, last = [], 0
    for start, end in zip(starts, ends, strict=True):
        parts += [text[last:start], " " * (end - start)]
        last = end
    return "".join(parts) + text[last:]


def in_known_header(doc: Doc, start_char: int, end_char: int) -> bool:
    """Whether characters ``[start_char, end_char)`` lie inside a header the sections file knows
    ("HISTORY OF PRESENT ILLNESS:"): such words name a part of the note, not a finding."""
    starts, ends = doc.user_data.get(_KNOWN_HEADERS_KEY, ((), ()))
    index = bisect.bisect_right(starts, start_char) - 1
    return index >= 0 and end_char <= ends[index]


def token_texts(doc: Doc) -> list[str]:
    """The token texts of ``doc``, computed once per doc from its offset arrays (cached in ``user_data``).

    Much faster than ``[t.text for t in doc]``, which builds a ``Token`` object per token; the components
    read the words through this.
    """
    cached = doc.user_data.get(_TEXTS_KEY)
    if cached is None or len(cached) != len(doc):
        strings = doc.vocab.strings
        cached = [strings[h] for h in doc.to_array(ORTH).tolist()] if len(doc) else []
        doc.user_data[_TEXTS_KEY] = cached
    return cached


def doc_text(doc: Doc) -> str:
    """``doc.text``, kept by the clinical tokenizer (``doc.text`` itself rebuilds it from the tokens)."""
    text = doc.user_data.get(_TEXT_KEY)
    if text is None or not len(doc) or doc[-1].idx + len(doc[-1].text_with_ws) != len(text):
        return doc.text
    return text


def sentence_bounds(doc: Doc) -> list[tuple[int, int]]:
    """``(start, end)`` token bounds of the sentences of ``doc``, the same as ``doc.sents`` gives.

    Read from the sentence-start flags (set by ``dsuite_clinical_sentences`` or any sentencizer) and
    cached in ``user_data``; a doc with a dependency parse falls back to ``doc.sents``.
    """
    cached = doc.user_data.get(_BOUNDS_KEY)
    if cached is not None:
        return cached
    if len(doc) == 0:
        return []
    if doc.has_annotation("DEP") or not doc.has_annotation("SENT_START"):
        bounds = [(s.start, s.end) for s in doc.sents]  # raises spaCy's own error without boundaries
    else:
        flags = doc.to_array([SENT_START]).astype("int64")
        bounds = _bounds_from_flags(flags)
    doc.user_data[_BOUNDS_KEY] = bounds
    return bounds


def _bounds_from_flags(flags: numpy.ndarray) -> list[tuple[int, int]]:
    starts = [0, *(int(i) for i in numpy.flatnonzero(flags[1:] == 1) + 1)]
    ends = [*starts[1:], len(flags)]
    return list(zip(starts, ends, strict=True))


def section_at(doc: Doc, char: int) -> tuple[str, str | None]:
    """The ``(section name, default assertion)`` holding character ``char`` of ``doc``."""
    sections = doc._.sections
    if not sections:
        return NO_SECTION, None
    cached = doc.user_data.get(_SECTION_STARTS_KEY)
    if cached is None or cached[0] is not sections:
        cached = (sections, [s[0] for s in sections])
        doc.user_data[_SECTION_STARTS_KEY] = cached
    index = bisect.bisect_right(cached[1], char) - 1
    if index < 0:
        return NO_SECTION, None
    return sections[index][2], sections[index][3]


def section_assertion(doc: Doc, char: int) -> str | None:
    """The default assertion of the section holding character ``char`` (None for most sections)."""
    return section_at(doc, char)[1]


class SectionsComponent:
    """spaCy component ``dsuite_sections``."""

    def __init__(self, sections_path: str | None) -> None:
        self.sections_path = sections_path

    def __call__(self, doc: Doc) -> Doc:
        doc._.sections, known = _scan_sections(doc_text(doc), self.sections_path)
        doc.user_data[_KNOWN_HEADERS_KEY] = ([a for a, _ in known], [b for _, b in known])
        return doc


@Language.factory("dsuite_sections", default_config={"sections_path": None})
def make_sections(nlp: Language, name: str, sections_path: str | None) -> SectionsComponent:
    """Factory of the section finder."""
    return SectionsComponent(sections_path)


_TITLES = frozenset({"dr", "mr", "mrs", "ms", "prof", "st"})


def _abbreviation(texts: list[str], i: int) -> bool:
    """Whether the ``.`` before token ``i`` closes an abbreviation rather than a sentence."""
    if i < 2 or texts[i - 1] != ".":
        return False
    before = texts[i - 2].lower()
    return before in _TITLES or (before in _ABBREVIATIONS and texts[i][:1].islower())


class ClinicalSentences:
    """spaCy component ``dsuite_clinical_sentences`` (run after ``dsuite_sections``)."""

    def __call__(self, doc: Doc) -> Doc:
        if len(doc) == 0:
            return doc
        header_starts = {s[0] for s in (doc._.sections or [])}
        flags = numpy.full(len(doc), -1, dtype="int32")
        flags[0] = 1
        texts = token_texts(doc)
        header_tokens = set()
        if header_starts:
            idx = doc.to_array(IDX).astype("int64")
            header_tokens = set(numpy.flatnonzero(numpy.isin(idx, list(header_starts))).tolist())
        for i in range(1, len(doc)):
            prev, cur = texts[i - 1], texts[i]
            if (
                (prev in _END and cur not in _END and not _abbreviation(texts, i))
                or ("\n" in prev and prev.isspace())
                or i in header_tokens
                or (prev == ":" and not cur.isspace() and cur not in _END)
            ):
                flags[i] = 1
        doc.from_array([SENT_START], flags.astype("int64").view("uint64").reshape(-1, 1))
        doc.user_data[_BOUNDS_KEY] = _bounds_from_flags(flags)
        return doc


@Language.factory("dsuite_clinical_sentences")
def make_sentences(nlp: Language, name: str) -> ClinicalSentences:
    """Factory of the clinical sentence splitter."""
    return ClinicalSentences()

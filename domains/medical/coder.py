"""ICD-10-CM coding of one note with evidence: candidates from the dictionary, faiss retrieval, the learned
lexicon and similar training notes; assertion filtering; ranking; a JSON result validated by
``coding_output.schema.json``.

Modes (the eval task reports each as a row):
    ``dictionary``: codes of the dictionary mentions, ranked by mention count then training frequency.
    ``retrieval``: faiss retrieval of code descriptions from every sentence, ranked by similarity.
    ``rules+retrieval``: dictionary mentions plus faiss retrieval from each mention's text.
    ``full``: rules+retrieval plus the code lexicon, faiss retrieval from every sentence and the codes of
    the most similar training notes (``neighbours.py``), ranked by the trained ranker (``ranker.py``).
Negated, family and hypothetical mentions are never coded; they are listed under ``excluded``. A code whose
only evidence in the note has such a status is not ranked. The full coder also ranks codes that similar
training notes carry when no phrase of the note names them (suggestions for the coder's review list, scored
low); a code enters the output JSON only with evidence spans from the note.

Each code in the output also says how the note asserts it (``assertion``: ``present`` when any of its
evidence is, else ``historical`` or ``possible``: "history of stroke", "possible pneumonia" are coded but
flagged, for the coder's review) and whether it is ``billable`` (a code with no subdivisions).
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from spacy.tokens import Doc, Span

from core_model.errors import DSuiteError
from domains.medical.abbreviations import Expanded, expand, expand_phrase
from domains.medical.code_rules import combined, contradicted, gives_way, lacks_mention, stage_conflict
from domains.medical.context import CATEGORY_TO_STATUS, NOT_CODED, assert_targets, sentence_assertion
from domains.medical.icd_codes import ancestors, describe, is_billable, is_valid
from domains.medical.laterality import side_of_evidence, unspecified_side
from domains.medical.lexicon import ngram_spans
from domains.medical.pipeline import default_nlp
from domains.medical.terms import assigned_code
from domains.medical.text import blank_known_headers, section_at, sentence_bounds

MODES = ("dictionary", "retrieval", "rules+retrieval", "full")
RETRIEVAL_K = 5
MIN_RETRIEVAL_SIM = 0.55
SENTENCE_K = 10  # full coder: codes retrieved per sentence
MIN_SENTENCE_SIM = 0.5  # full coder: a sentence hit at least this similar adds a candidate
# a heading at the start of a sentence (after stray commas): words of letters, "/", "&", "-" and a colon;
# up to 3 words in any case ("Past history:") or up to 6 in capitals ("HISTORY OF PRESENT ILLNESS:")
_HEADING = re.compile(r"^[\s,]*([A-Za-z][A-Za-z/&-]*(?:[ \t]+[A-Za-z/&-]+){0,5})[ \t]*:")
REASONS = {
    "negated": "the note says the patient does not have it (denied, ruled out or resolved)",
    "family": "the condition belongs to a family member, not the patient",
    "hypothetical": "the condition is mentioned as a future or conditional possibility",
}


def exclusion_reason(span: Span, status: str) -> str:
    """Why a mention is not coded, with the trigger phrases that decided it ("denies", "mother", "if"), or
    its section when no phrase did (a family history section)."""
    phrases = [m["phrase"] for m in span._.modifiers or [] if CATEGORY_TO_STATUS.get(m["category"]) == status]
    trigger = ", ".join(f"'{p}'" for p in dict.fromkeys(phrases)) if phrases else "its section"
    return f"{REASONS[status]}: {trigger}"


@dataclass
class Candidate:
    """A code with the spans that support it and the feature values the ranker reads."""

    code: str
    evidence: list[dict] = field(default_factory=list)  # phrases: dictionary, mention retrieval, lexicon
    dict_count: int = 0
    dict_first: bool = False
    assured: bool = False  # the code of a synonym marked "assign" (condition_synonyms.json) the note names
    retrieval: float = 0.0
    lexicon: float = 0.0
    lexicon_bigram: bool = False
    sentences: list[dict] = field(default_factory=list)  # whole sentences retrieved (full coder)
    sentence: float = 0.0  # best similarity of a codable sentence whose top hits hold the code
    knn: float = 0.0  # vote of the most similar training notes (0..1)
    lexicon_count: int = 0
    lexicon_top2: float = 0.0
    lexicon_noisy_or: float = 0.0

    def phrase_evidence(self) -> list[dict]:
        """Phrase evidence spans whose assertion allows coding."""
        return [e for e in self.evidence if e["assertion"] not in NOT_CODED]

    def coded_evidence(self) -> list[dict]:
        """Evidence spans (phrases, then sentences) whose assertion allows coding."""
        return self.phrase_evidence() + [e for e in self.sentences if e["assertion"] not in NOT_CODED]

    def rankable(self) -> bool:
        """Whether the code is ranked: it has codable evidence, or no evidence at all but neighbour votes
        (a code the note only mentions as negated, family or hypothetical is never ranked)."""
        if self.coded_evidence():
            return True
        return not self.evidence and not self.sentences and self.knn > 0


def _sentence(doc: Doc, span: Span) -> Span:
    bounds = sentence_bounds(doc)
    starts = doc.user_data.get("dsuite_sent_starts")
    if starts is None or len(starts) != len(bounds):
        starts = [b[0] for b in bounds]
        doc.user_data["dsuite_sent_starts"] = starts
    index = bisect.bisect_right(starts, span.start) - 1
    return doc[bounds[index][0] : bounds[index][1]]


def _span_record(doc: Doc, span: Span, source: str) -> dict:
    sentence = _sentence(doc, span)
    return {
        "text": span.text,
        "start": span.start_char,
        "end": span.end_char,
        "sentence": sentence.text.strip(),
        "section": section_at(doc, span.start_char)[0],
        "assertion": span._.assertion or "present",
        "source": source,
    }


class IcdCoder:
    """Codes notes; one instance per process (it holds the spaCy pipeline, index and ranker)."""

    def __init__(
        self,
        mode: str = "full",
        threshold: float | None = None,
        lexicon=None,
        ranker=None,
        neighbours=None,
    ) -> None:
        """Set up a coder.

        Args:
            mode: one of ``MODES``.
            threshold: minimum score of an output code (default: the ranker's tuned threshold for ``full``,
                0 for the other modes, which output every candidate).
            lexicon: a ``Lexicon`` to use instead of the shipped one (training uses this).
            ranker: a ``Ranker`` to use instead of the shipped one.
            neighbours: a ``NoteNeighbours`` index to use instead of the shipped one.
        """
        if mode not in MODES:
            raise DSuiteError(f"Unknown coder mode '{mode}'; expected one of {', '.join(MODES)}.")
        self.mode = mode
        self.nlp = default_nlp()
        self.ranker = None
        self.lexicon = None
        self.neighbours = None
        if mode == "full" and (lexicon is None or ranker is None or neighbours is None):
            from domains.medical.ranker import load_ranker

            self.ranker, self.lexicon, self.neighbours = load_ranker()
        if lexicon is not None:
            self.lexicon = lexicon
        if ranker is not None:
            self.ranker = ranker
        if neighbours is not None:
            self.neighbours = neighbours
        self.threshold = (
            threshold if threshold is not None else (self.ranker.threshold if self.ranker else 0.0)
        )
        self._retrieval_cache: dict[str, list[tuple[str, float]]] = {}
        self._sentence_cache: dict[str, list[tuple[str, float]]] = {}

    # -- candidates -------------------------------------------------------------------------------------
    def _retrieve(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        return _cached_search(self._retrieval_cache, texts, RETRIEVAL_K)

    def _retrieve_sentences(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        return _cached_search(self._sentence_cache, texts, SENTENCE_K)

    def prefetch(self, docs: list[Doc]) -> None:
        """Embed and retrieve the mentions (and, for the full coder, the sentences) of several docs in one
        batch; the batch job calls this per chunk, so the per-note calls find their hits cached."""
        if self.mode in ("rules+retrieval", "full"):
            self._retrieve([_query(span.text) for doc in docs for span in doc.spans["conditions"]])
        if self.mode == "full":
            self._retrieve_sentences([expand_phrase(text) for doc in docs for _, _, text in _sentences(doc)])

    def candidates(self, text: str, doc: Doc | None = None) -> tuple[Doc, dict[str, Candidate], list[dict]]:
        """Run the pipeline and collect candidate codes.

        Args:
            text: the note.
            doc: ``self.nlp(text)`` when the caller already ran the pipeline.

        Returns:
            The doc, ``{code: Candidate}`` and the excluded mentions (with reasons).
        """
        doc = self.nlp(text) if doc is None else doc
        cands: dict[str, Candidate] = {}
        excluded: list[dict] = []

        def get(code: str) -> Candidate:
            return cands.setdefault(code, Candidate(code))

        mentions = list(doc.spans["conditions"])
        if self.mode == "retrieval":
            sents = [s for s in doc.sents if len(s.text.strip()) > 3]
            for sent, hits in zip(sents, self._retrieve([s.text.strip() for s in sents]), strict=True):
                span = doc[sent.start : sent.end]
                span._.assertion = "present"
                record = _span_record(doc, span, "retrieval")
                for code, sim in hits:
                    cand = get(code)
                    cand.retrieval = max(cand.retrieval, sim)
                    cand.evidence.append(record)
            return doc, cands, excluded
        records = [_span_record(doc, span, "dictionary") for span in mentions]
        for span, record in zip(mentions, records, strict=True):
            if record["assertion"] in NOT_CODED:
                excluded.append(
                    {
                        "text": record["text"],
                        "start": record["start"],
                        "end": record["end"],
                        "sentence": record["sentence"],
                        "assertion": record["assertion"],
                        "reason": exclusion_reason(span, record["assertion"]),
                        "codes": list(span._.icd_codes or []),
                    }
                )
            assured = assigned_code(span.text)
            for rank, code in enumerate(span._.icd_codes or []):
                cand = get(code)
                cand.evidence.append(record)
                if record["assertion"] not in NOT_CODED:
                    cand.dict_count += 1
                    cand.dict_first = cand.dict_first or rank == 0
                    cand.assured = cand.assured or code == assured
        if self.mode in ("rules+retrieval", "full") and mentions:
            hits_of = self._retrieve([_query(r["text"]) for r in records])
            for dict_record, hits in zip(records, hits_of, strict=True):
                record = {**dict_record, "source": "retrieval"}
                for code, sim in hits:
                    if sim < MIN_RETRIEVAL_SIM:
                        continue
                    cand = get(code)
                    cand.evidence.append(record)
                    if record["assertion"] not in NOT_CODED:
                        cand.retrieval = max(cand.retrieval, sim)
        if self.mode == "full":
            self._full_candidates(doc, text, get, cands)
        return doc, cands, excluded

    def _full_candidates(self, doc: Doc, text: str, get, cands: dict[str, Candidate]) -> None:
        """The full coder's extra sources: lexicon n-grams, sentence retrieval, neighbour votes; each reads
        the note with its abbreviations written out (``abbreviations.py``)."""
        rules = self.nlp.get_pipe("dsuite_context").rules
        expanded = expand(text)
        # the lexicon reads no section header's words ("HISTORY OF PRESENT ILLNESS" names no illness)
        blanked = blank_known_headers(doc, text)
        lexical = expanded if blanked is text else expand(blanked)
        matches = self.lexicon.matches(lexical.text) if self.lexicon is not None else {}
        self._lexicon_evidence(doc, lexical, matches, rules, get)
        sentences = _sentences(doc)
        best_sentence: dict[str, float] = {}
        for (start, end, _), hits in zip(
            sentences, self._retrieve_sentences([expand_phrase(t) for *_, t in sentences]), strict=True
        ):
            status = sentence_assertion(doc, start, end, rules)
            record = None
            for code, sim in hits:
                if status not in NOT_CODED:
                    best_sentence[code] = max(best_sentence.get(code, 0.0), sim)
                if sim >= MIN_SENTENCE_SIM:
                    record = record or _sentence_record(doc, start, end, status)
                    get(code).sentences.append(record)
        if self.neighbours is not None:
            votes, _ = self.neighbours.votes(expanded.text)
            for code, vote in votes.items():
                get(code).knn = vote
        for code, cand in cands.items():
            cand.sentence = best_sentence.get(code, 0.0)
            match = matches.get(code)
            if match is not None:
                cand.lexicon_count = match.count
                cand.lexicon_top2 = match.top2
                cand.lexicon_noisy_or = match.noisy_or

    def _lexicon_evidence(self, doc: Doc, expanded: Expanded, matches: dict, rules, get) -> None:
        """Lexicon evidence of each code: the first occurrence of its best n-gram that the note does not
        negate (or attribute to family, or make hypothetical); when every occurrence is so, the first one,
        and the code is excluded. Weaker n-grams never stand in for a denied best one. An n-gram of an
        expanded abbreviation points at the abbreviation in the note."""
        if not matches:
            return
        grams = ngram_spans(expanded.text)
        occurrences = {  # only the matched n-grams, at the note's own offsets
            match.gram: [expanded.to_original(*offsets) for offsets in grams.get(match.gram, ())]
            for match in matches.values()
        }
        spans: dict[tuple[int, int], Span] = {}
        for match in matches.values():
            for offsets in occurrences.get(match.gram, ()):
                if offsets not in spans:
                    span = doc.char_span(*offsets, alignment_mode="expand")
                    if span is not None:
                        spans[offsets] = span
        assert_targets(doc, list(spans.values()), rules)
        for code, match in matches.items():
            found = [spans[o] for o in occurrences.get(match.gram, ()) if o in spans]
            if not found:
                continue
            codable = [span for span in found if (span._.assertion or "present") not in NOT_CODED]
            cand = get(code)
            cand.evidence.append(_span_record(doc, (codable or found)[0], "lexicon"))
            if codable:
                cand.lexicon = match.value
                cand.lexicon_bigram = " " in match.gram

    # -- ranking ----------------------------------------------------------------------------------------
    def rank(self, text: str, doc: Doc | None = None) -> tuple[list[tuple[Candidate, float]], list[dict]]:
        """Rankable candidates (``Candidate.rankable``) with scores, best first, and the excluded mentions.

        Only ``assigned(ranked)`` goes into the output; the full ranking also holds codes that only
        similar training notes suggest (no evidence in this note), for a reviewer's list and for MAP.
        """
        doc, cands, excluded = self.candidates(text, doc)
        usable = [c for c in cands.values() if c.rankable()]
        if self.mode == "full":
            # a synonym marked "assign" names one diagnosis: its code reaches the threshold whatever the
            # ranker, which learned from CodiEsp and scores codes CodiEsp lacks low, makes of it
            scores = [
                max(score, self.threshold) if cand.assured else score
                for cand, score in zip(usable, self.ranker.score(usable, text), strict=True)
            ]
        elif self.mode == "dictionary":
            prior = _prior()
            scores = [
                c.dict_count + 0.5 * c.dict_first + 0.01 * math.log1p(prior.get(c.code, 0)) for c in usable
            ]
        elif self.mode == "retrieval":
            scores = [c.retrieval for c in usable]
        else:
            scores = [max(1.0 if c.dict_count else 0.0, c.retrieval) + 0.01 * c.dict_count for c in usable]
        ranked = sorted(zip(usable, scores, strict=True), key=lambda pair: (-pair[1], pair[0].code))
        return ranked, excluded

    def code(self, text: str, note_id: str | None = None, doc: Doc | None = None) -> dict:
        """Code one note.

        Args:
            text: the note.
            note_id: its id (copied into the result).
            doc: ``self.nlp(text)`` when the caller already ran the pipeline.

        Returns:
            A dict valid against ``data/medical/coding_output.schema.json``.
        """
        if not isinstance(text, str) or not text.strip():
            raise DSuiteError("The note text is empty; pass the clinical note as non-empty text.")
        ranked, excluded = self.rank(text, doc)
        codes = []
        for cand, score in self.assigned(ranked, text):
            seen, evidence = set(), []
            for record in cand.coded_evidence():
                key = (record["start"], record["end"], record["source"])
                if key not in seen:
                    seen.add(key)
                    evidence.append(record)
            codes.append(
                {
                    "code": cand.code,
                    "description": describe(cand.code),
                    "score": round(float(score), 4),
                    "assertion": code_assertion(evidence),
                    "billable": is_billable(cand.code),
                    "support": code_support(cand.code, cand.phrase_evidence()),
                    "evidence": evidence[:5],
                }
            )
        return {
            "id": note_id,
            "codes": codes,
            "excluded": excluded,
            "coder": self.describe(),
            "threshold": round(float(self.threshold), 4),
            "base_fingerprint": None,
            "adapter": None,
        }

    def assigned(self, ranked: list[tuple[Candidate, float]], text: str) -> list[tuple[Candidate, float]]:
        """The ranked codes that go into the output for the note ``text``: score at least the threshold, a
        valid ICD-10-CM code, codable evidence in the note, on the side its evidence names (``laterality``),
        consistent with the note (``consistent``: no stage its evidence contradicts, the condition a code
        names is in the note, no variant named that excludes it), and no more specific code of its own
        among them (``K80`` goes when ``K80.50`` is assigned, "unspecified knee" when the right knee is: code
        to the highest specificity), nor a catch-all another code makes redundant
        (``code_rules.gives_way``); a code ICD-10-CM combines with others of the note becomes the combination
        (``code_rules.combines``: I10 beside N18.4 is I12.9)."""
        kept = []
        for cand, score in ranked:
            evidence = cand.coded_evidence() if score >= self.threshold and is_valid(cand.code) else []
            sentences = [record["sentence"] for record in evidence]
            if evidence and consistent(cand.code, sentences, text):
                side = side_of_evidence(cand.code, sentences)
                kept.append((cand if side == cand.code else replace(cand, code=side), score))
        firsts = {}  # one entry per code: the best scored (ranked comes best first)
        for cand, score in kept:
            firsts.setdefault(cand.code, (cand, score))
        kept = list(firsts.values())
        # "I10" beside "N18.4" is "I12.9": codes ICD-10-CM combines become the combination (once)
        present = [cand.code for cand, _ in kept]
        merged = [(cand, score, combined(cand.code, present)) for cand, score in kept]
        kept = [
            (cand if into is None else replace(cand, code=into), score)
            for cand, score, into in merged
            if into is None or into not in present
        ]
        covered = {ancestor for cand, _ in kept for ancestor in ancestors(cand.code)}
        kept = [(cand, score) for cand, score in kept if cand.code not in covered]
        codes = [cand.code for cand, _ in kept]
        spans = {cand.code: [(e["start"], e["end"]) for e in cand.coded_evidence()] for cand, _ in kept}
        # "Pain in unspecified knee" goes when the knee's side is coded
        redundant = {unspecified_side(code) for code in codes}
        redundant |= {code for code in codes if gives_way(code, codes, spans)}
        return [(cand, score) for cand, score in kept if cand.code not in redundant]

    def describe(self) -> str:
        """``mode`` plus the ranker version for the full coder."""
        return f"full:{self.ranker.version}" if self.ranker else self.mode


def consistent(code: str, sentences: list[str], note: str) -> bool:
    """Whether ``code`` agrees with its evidence ``sentences`` and the ``note`` (``code_rules``): no stage
    the evidence contradicts, its condition named, no variant named that excludes it."""
    return not (stage_conflict(code, sentences) or lacks_mention(code, note) or contradicted(code, note))


def code_support(code: str, phrases: list[dict]) -> str:
    """``stated`` when the note names the code's condition: a dictionary term of the code, or a phrase of
    evidence that shares a content word with the code's description (abbreviations written out); else
    ``inferred``: the code comes only from words that go with it in coded training notes (the lexicon) or
    from a similar sentence, and wants a coder's review.
    """
    from domains.medical.ranker import content_words, description_words

    if any(e["source"] == "dictionary" for e in phrases):
        return "stated"
    described = description_words(code)
    named = any(content_words(expand_phrase(e["text"])) & described for e in phrases)
    return "stated" if named else "inferred"


def code_assertion(evidence: list[dict]) -> str:
    """How the note asserts a code: ``present`` if any of its evidence is, else ``historical`` if any is,
    else ``possible``."""
    found = {record["assertion"] for record in evidence}
    return next((status for status in ("present", "historical") if status in found), "possible")


def _cached_search(cache: dict, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
    """Nearest code descriptions of each text (``k`` per text), embedding only texts not in ``cache``."""
    from domains.medical.embeddings import shared_embedder
    from domains.medical.icd_index import load_index

    todo = [t for t in dict.fromkeys(texts) if t not in cache]
    if todo:
        hits = load_index().search(shared_embedder().encode(todo), k)
        for text, found in zip(todo, hits, strict=True):
            cache[text] = found
        if len(cache) > 200_000:
            keep = set(texts)
            for text in [t for t in cache if t not in keep]:
                del cache[text]
    return [cache[t] for t in texts]


def _query(mention: str) -> str:
    """The retrieval query of a mention: lower case, its abbreviations written out."""
    return expand_phrase(mention).lower()


def _sentences(doc: Doc) -> list[tuple[int, int, str]]:
    """``(start token, end token, query)`` of each sentence to retrieve codes for: its text without a leading
    heading ("ABDOMEN:", "ANESTHESIA:"), kept when more than 3 characters remain. A heading names where a
    note looks, not what it finds: alone it retrieved "Anesthesia of skin" or "Acute abdomen" in operative
    and exam notes."""
    out = []
    for start, end in sentence_bounds(doc):
        text = without_heading(doc[start:end].text).strip()
        if len(text) > 3:
            out.append((start, end, text))
    return out


def without_heading(sentence: str) -> str:
    """``sentence`` without a leading heading ("ABDOMEN:  Soft." -> "  Soft."); as it is when it has none."""
    match = _HEADING.match(sentence)
    if match is None:
        return sentence
    words = match.group(1).split()
    if len(words) <= 3 or match.group(1).isupper():
        return sentence[match.end() :]
    return sentence


def _sentence_record(doc: Doc, start: int, end: int, status: str) -> dict:
    """An evidence record for a whole sentence (its text without the surrounding white space)."""
    span = doc[start:end]
    text = span.text
    lead = len(text) - len(text.lstrip())
    stripped = text.strip()
    begin = span.start_char + lead
    return {
        "text": stripped,
        "start": begin,
        "end": begin + len(stripped),
        "sentence": stripped,
        "section": section_at(doc, begin)[0],
        "assertion": status,
        "source": "retrieval",
    }


@lru_cache(maxsize=1)
def _prior() -> dict[str, int]:
    from domains.medical.ranker import code_prior

    return code_prior()


@lru_cache(maxsize=4)
def get_coder(mode: str = "full") -> IcdCoder:
    """One coder per mode per process."""
    return IcdCoder(mode)


@lru_cache(maxsize=1)
def output_schema() -> dict:
    """The JSON schema of a coding result."""
    import json

    from domains.medical.resources import OUTPUT_SCHEMA

    return json.loads(OUTPUT_SCHEMA.read_text(encoding="utf-8"))


def validate_result(result: dict) -> None:
    """Raise DSuiteError when ``result`` does not satisfy the output schema."""
    import jsonschema

    try:
        jsonschema.validate(result, output_schema())
    except jsonschema.ValidationError as exc:
        raise DSuiteError(f"Coding result for note {result.get('id')!r} is invalid: {exc.message}") from exc

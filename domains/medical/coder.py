"""ICD-10-CM coding of one note with evidence: candidates from the dictionary, faiss retrieval and the
learned lexicon; assertion filtering; ranking; a JSON result validated by ``coding_output.schema.json``.

Modes (the eval task reports each as a row):
    ``dictionary``: codes of the dictionary mentions, ranked by mention count then training frequency.
    ``retrieval``: faiss retrieval of code descriptions from every sentence, ranked by similarity.
    ``rules+retrieval``: dictionary mentions plus faiss retrieval from each mention's text.
    ``full``: rules+retrieval plus the code lexicon, ranked by the trained ranker (``ranker.py``).
Negated, family and hypothetical mentions are never coded; they are listed under ``excluded``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from functools import lru_cache

from spacy.tokens import Doc, Span

from core_model.errors import DSuiteError
from domains.medical.context import NOT_CODED, assert_targets
from domains.medical.icd_codes import describe, is_valid
from domains.medical.pipeline import default_nlp
from domains.medical.text import section_at

MODES = ("dictionary", "retrieval", "rules+retrieval", "full")
RETRIEVAL_K = 5
MIN_RETRIEVAL_SIM = 0.55
REASONS = {
    "negated": "the note denies or rules out this condition",
    "family": "the condition belongs to a family member, not the patient",
    "hypothetical": "the condition is mentioned as a future or conditional possibility",
}


@dataclass
class Candidate:
    """A code with the spans that support it and the feature values the ranker reads."""

    code: str
    evidence: list[dict] = field(default_factory=list)
    dict_count: int = 0
    dict_first: bool = False
    retrieval: float = 0.0
    lexicon: float = 0.0
    lexicon_bigram: bool = False

    def coded_evidence(self) -> list[dict]:
        """Evidence spans whose assertion allows coding."""
        return [e for e in self.evidence if e["assertion"] not in NOT_CODED]


def _sentence(doc: Doc, span: Span) -> Span:
    bounds = doc.user_data.get("dsuite_sent_bounds")
    if bounds is None:
        bounds = [(s.start, s.end) for s in doc.sents]
        doc.user_data["dsuite_sent_bounds"] = bounds
    index = bisect.bisect_right([b[0] for b in bounds], span.start) - 1
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

    def __init__(self, mode: str = "full", threshold: float | None = None, lexicon=None, ranker=None) -> None:
        """Set up a coder.

        Args:
            mode: one of ``MODES``.
            threshold: minimum score of an output code (default: the ranker's tuned threshold for ``full``,
                0 for the other modes, which output every candidate).
            lexicon: a ``Lexicon`` to use instead of the shipped one (training uses this).
            ranker: a ``Ranker`` to use instead of the shipped one.
        """
        if mode not in MODES:
            raise DSuiteError(f"Unknown coder mode '{mode}'; expected one of {', '.join(MODES)}.")
        self.mode = mode
        self.nlp = default_nlp()
        self.ranker = None
        self.lexicon = None
        if mode == "full" and (lexicon is None or ranker is None):
            from domains.medical.ranker import load_ranker

            self.ranker, self.lexicon = load_ranker()
        if lexicon is not None:
            self.lexicon = lexicon
        if ranker is not None:
            self.ranker = ranker
        self.threshold = (
            threshold if threshold is not None else (self.ranker.threshold if self.ranker else 0.0)
        )
        self._retrieval_cache: dict[str, list[tuple[str, float]]] = {}

    # -- candidates -------------------------------------------------------------------------------------
    def _retrieve(self, texts: list[str]) -> list[list[tuple[str, float]]]:
        from domains.medical.embeddings import shared_embedder
        from domains.medical.icd_index import load_index

        todo = [t for t in dict.fromkeys(texts) if t not in self._retrieval_cache]
        if todo:
            hits = load_index().search(shared_embedder().encode(todo), RETRIEVAL_K)
            for text, found in zip(todo, hits, strict=True):
                self._retrieval_cache[text] = found
            if len(self._retrieval_cache) > 200_000:
                self._retrieval_cache.clear()
        return [self._retrieval_cache[t] for t in texts]

    def candidates(self, text: str) -> tuple[Doc, dict[str, Candidate], list[dict]]:
        """Run the pipeline and collect candidate codes.

        Returns:
            The doc, ``{code: Candidate}`` and the excluded mentions (with reasons).
        """
        doc = self.nlp(text)
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
        for span in mentions:
            record = _span_record(doc, span, "dictionary")
            if record["assertion"] in NOT_CODED:
                excluded.append(
                    {
                        "text": record["text"],
                        "start": record["start"],
                        "end": record["end"],
                        "sentence": record["sentence"],
                        "assertion": record["assertion"],
                        "reason": REASONS[record["assertion"]],
                        "codes": list(span._.icd_codes or []),
                    }
                )
            for rank, code in enumerate(span._.icd_codes or []):
                cand = get(code)
                cand.evidence.append(record)
                if record["assertion"] not in NOT_CODED:
                    cand.dict_count += 1
                    cand.dict_first = cand.dict_first or rank == 0
        if self.mode in ("rules+retrieval", "full") and mentions:
            for span, hits in zip(mentions, self._retrieve([m.text.lower() for m in mentions]), strict=True):
                for code, sim in hits:
                    if sim < MIN_RETRIEVAL_SIM:
                        continue
                    cand = get(code)
                    record = _span_record(doc, span, "retrieval")
                    cand.evidence.append(record)
                    if record["assertion"] not in NOT_CODED:
                        cand.retrieval = max(cand.retrieval, sim)
        if self.mode == "full" and self.lexicon is not None:
            found = self.lexicon.score(text)
            spans, keys = [], []
            for code, (value, gram, (start, end)) in found.items():
                span = doc.char_span(start, end, alignment_mode="expand")
                if span is not None:
                    spans.append(span)
                    keys.append((code, value, gram))
            assert_targets(doc, spans, self.nlp.get_pipe("dsuite_context").rules)
            for span, (code, value, gram) in zip(spans, keys, strict=True):
                cand = get(code)
                record = _span_record(doc, span, "lexicon")
                cand.evidence.append(record)
                if record["assertion"] not in NOT_CODED:
                    cand.lexicon = value
                    cand.lexicon_bigram = " " in gram
        return doc, cands, excluded

    # -- ranking ----------------------------------------------------------------------------------------
    def rank(self, text: str) -> tuple[list[tuple[Candidate, float]], list[dict]]:
        """Codable candidates with scores, best first, and the excluded mentions."""
        doc, cands, excluded = self.candidates(text)
        usable = [c for c in cands.values() if c.coded_evidence()]
        if self.mode == "full":
            scores = self.ranker.score(usable, text)
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

    def code(self, text: str, note_id: str | None = None) -> dict:
        """Code one note.

        Args:
            text: the note.
            note_id: its id (copied into the result).

        Returns:
            A dict valid against ``data/medical/coding_output.schema.json``.
        """
        if not isinstance(text, str) or not text.strip():
            raise DSuiteError("The note text is empty; pass the clinical note as non-empty text.")
        ranked, excluded = self.rank(text)
        codes = []
        for cand, score in ranked:
            if score < self.threshold or not is_valid(cand.code):
                continue
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

    def describe(self) -> str:
        """``mode`` plus the ranker version for the full coder."""
        return f"full:{self.ranker.version}" if self.ranker else self.mode


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

"""The multi-turn finance advisor: dialog state, cited definitions, feed snapshots, grounding, disclaimer.

``FinanceAdvisor.ask(text)`` runs one turn:
1. refuse guaranteed-return, insider-trading and manipulation requests (with an explanation);
2. extract terms, tickers, money, percentages and dates, and update the dialog state;
3. cite definitions (terms named in the turn, then retrieval over the dictionary and the user's documents);
4. take a snapshot of each instrument's feed (replay of the shared history, else the seeded simulation);
5. let the finance adapter draft advice from that context (or, in ``mode="extractive"``, write no draft);
6. check every number of the draft against the snapshot, the user's words and the cited definitions,
   drop sentences with ungrounded numbers, and append the cited figures and the disclaimer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core_model.errors import DSuiteError
from domains.finance.dictionary import Term, load_dictionary
from domains.finance.extraction import extract
from domains.finance.grounding import GroundingCheck, check_numbers, keep_grounded_sentences
from domains.finance.market import Snapshot, latest_snapshot
from domains.finance.policy import check_request, disclaimer
from domains.finance.sentiment import SYSTEM_PROMPT
from domains.finance.state import DialogState, load_dialog_rules

logger = logging.getLogger(__name__)

MODES = ("model", "extractive")
MAX_TERMS = 3
MAX_SNAPSHOTS = 2
ADVICE_PROMPT = (
    "Context:\n{context}\n\nClient profile: {state}\n\nQuestion: {question}\n\n"
    "Answer in two or three short sentences, using only the context. Do not invent figures."
)


@dataclass
class Answer:
    """One advisor turn.

    Attributes:
        text: the full answer shown to the user (body, cited figures and terms, disclaimer).
        body: the advice itself (after the grounding filter) or the refusal explanation.
        state: the dialog state after this turn.
        changed: the state slots this turn changed.
        cited_terms: dictionary entries cited (term, definition, ref, source).
        snapshots: feed snapshots cited.
        grounding: the check of the final text; ``draft_grounding`` the check of the model's draft.
        dropped: draft sentences removed for ungrounded numbers.
        disclaimer: the disclaimer (always present in ``text``).
        refused: the refusal rule name, or None.
        mentions: what the extractor found in the user's text.
        answered_by: ``adapter:finance``, ``base`` or ``extractive``.
    """

    text: str
    body: str
    state: dict
    changed: list[str]
    cited_terms: list[dict]
    snapshots: list[dict]
    grounding: GroundingCheck
    draft_grounding: GroundingCheck
    dropped: list[str]
    disclaimer: str
    refused: str | None
    mentions: list[dict]
    answered_by: str

    def to_dict(self) -> dict:
        """A JSON-able view."""
        out = dict(self.__dict__)
        out["grounding"] = self.grounding.to_dict()
        out["draft_grounding"] = self.draft_grounding.to_dict()
        return out


@dataclass
class FinanceAdapterModel:
    """Drafts answers with the finance adapter (falls back to the bare base when it is not registered)."""

    adapter: str | None = "finance"
    base: str | None = None
    max_new_tokens: int = 80
    label: str = field(default="", init=False)

    def draft(self, prompt: str) -> str:
        """A greedy draft for ``prompt``."""
        from eval.model_io import complete
        from eval.registry import SystemSpec

        spec = SystemSpec(adapter=self.adapter, base=self.base)
        try:
            text = complete(spec, [prompt], max_new_tokens=self.max_new_tokens, system_prompt=SYSTEM_PROMPT)[
                0
            ]
            self.label = spec.label
        except DSuiteError as exc:
            if self.adapter is None:
                raise
            logger.warning("finance adapter %r unavailable (%s); answering with the base", self.adapter, exc)
            self.adapter = None
            return self.draft(prompt)
        return text


class FinanceAdvisor:
    """A multi-turn advisory session.

    Args:
        mode: ``model`` (the finance adapter drafts the advice) or ``extractive`` (no model: the answer is
            the cited definitions and figures only).
        adapter: the adapter that drafts (``None`` = the bare base).
        retriever: a ``FinanceRetriever`` (default: the cached dictionary index, built on first use).
        seed: seed of simulated feeds for symbols without a shared history.
        feeds: optional ``{symbol: Feed}`` overriding the default feed per symbol.
    """

    def __init__(
        self,
        mode: str = "model",
        adapter: str | None = "finance",
        base: str | None = None,
        retriever=None,
        seed: int = 0,
        feeds: dict | None = None,
        use_retrieval: bool = True,
    ) -> None:
        if mode not in MODES:
            raise DSuiteError(f"Advisor mode must be one of {MODES}, got {mode!r}.")
        self.mode = mode
        self.state = DialogState()
        self.history: list[tuple[str, str]] = []
        self.model = FinanceAdapterModel(adapter=adapter, base=base) if mode == "model" else None
        self._retriever = retriever
        self.use_retrieval = use_retrieval
        self.seed = seed
        self.feeds = dict(feeds or {})
        self.dictionary = load_dictionary()
        categories = set(load_dialog_rules()["instrument_categories"])
        self.instrument_terms = {
            t.term for t in self.dictionary.terms if t.source == "glossary" and t.kind in categories
        }

    @property
    def retriever(self):
        """The retriever (built lazily)."""
        if self._retriever is None and self.use_retrieval:
            from domains.finance.retrieval import finance_retriever

            self._retriever = finance_retriever(k=MAX_TERMS)
        return self._retriever

    def add_document(self, path) -> int:
        """Index a user document (.txt, .md, .pdf) for later answers; returns the chunks added."""
        if self.retriever is None:
            raise DSuiteError("This advisor was created with use_retrieval=False; it cannot index documents.")
        return self.retriever.add_document(path)

    def snapshot(self, symbol: str) -> Snapshot:
        """The latest snapshot of ``symbol`` from its feed."""
        from domains.finance.market import default_snapshot

        if symbol in self.feeds:
            return latest_snapshot(self.feeds[symbol])
        return default_snapshot(symbol, self.seed)

    def _cite_terms(self, text: str, mentions) -> tuple[list[Term], list[dict]]:
        terms: list[Term] = []
        for mention in mentions:
            if mention.label == "TERM":
                entry = next((t for t in self.dictionary.lookup(mention.term) if t.ref == mention.ref), None)
                if entry and entry not in terms:
                    terms.append(entry)
        documents = []
        if self.retriever is not None:
            for doc in self.retriever.invoke(text):
                meta = doc.metadata
                if meta.get("kind") == "term":
                    entry = next(
                        (t for t in self.dictionary.lookup(meta["term"]) if t.ref == meta["ref"]), None
                    )
                    if entry and entry not in terms:
                        terms.append(entry)
                elif meta.get("score", 0) >= 0.3:
                    documents.append(
                        {"source": meta["source"], "text": doc.page_content, "score": meta["score"]}
                    )
        return terms[:MAX_TERMS], documents[:2]

    def ask(self, text: str) -> Answer:
        """Answer one user turn and update the session's state.

        Raises:
            DSuiteError: ``text`` is empty.
        """
        if not isinstance(text, str) or not text.strip():
            raise DSuiteError("The advisor needs a non-empty question, e.g. 'What is an index fund?'.")
        mentions = extract(text)
        changed = self.state.update(text, mentions, self.instrument_terms)
        note = disclaimer()
        refusal = check_request(text)
        user_words = [turn for turn, _ in self.history] + [text]
        if refusal:
            body = refusal.explanation
            final = f"{body}\n\n{note}"
            check = check_numbers(body, user_words)
            self.history.append((text, final))
            return Answer(
                final,
                body,
                self.state.to_dict(),
                changed,
                [],
                [],
                check,
                check,
                [],
                note,
                refusal.rule,
                [m.to_dict() for m in mentions],
                "policy",
            )
        terms, documents = self._cite_terms(text, mentions)
        turn_symbols = [m.text.lstrip("$").upper() for m in mentions if m.label == "TICKER"]
        symbols = list(dict.fromkeys(turn_symbols + self.state.tickers()))[:MAX_SNAPSHOTS]
        snapshots = [self.snapshot(s) for s in symbols]
        sources = user_words + [s.summary() for s in snapshots] + [t.definition for t in terms]
        sources += [d["text"] for d in documents]
        draft, answered_by = "", "extractive"
        if self.model is not None:
            draft = self.model.draft(self._prompt(text, terms, snapshots, documents))
            answered_by = self.model.label or "model"
        draft_check = check_numbers(draft, sources)
        body, dropped = keep_grounded_sentences(draft, sources) if draft else ("", [])
        parts = [body] if body else []
        if snapshots:
            parts.append("Figures: " + " | ".join(s.summary() for s in snapshots))
        if terms:
            parts.append("Terms: " + " ".join(f"{t.term}: {t.definition} [{t.source}]" for t in terms))
        if documents:
            parts.append(
                "From your documents: " + " ".join(f"({d['source']}) {d['text']}" for d in documents)
            )
        if not parts:
            parts.append("I could not find a dictionary term or market figure for that; could you rephrase?")
        parts.append(note)
        final = "\n\n".join(parts)
        self.history.append((text, final))
        return Answer(
            final,
            body,
            self.state.to_dict(),
            changed,
            [t.to_dict() for t in terms],
            [s.to_dict() for s in snapshots],
            check_numbers(final, sources),
            draft_check,
            dropped,
            note,
            None,
            [m.to_dict() for m in mentions],
            answered_by,
        )

    def _prompt(self, text: str, terms, snapshots, documents) -> str:
        lines = [f"- {t.term}: {t.definition}" for t in terms]
        lines += [f"- {s.summary()}" for s in snapshots]
        lines += [f"- ({d['source']}) {d['text']}" for d in documents]
        return ADVICE_PROMPT.format(
            context="\n".join(lines) or "- (none)", state=self.state.describe(), question=text
        )

"""The multi-turn finance advisor: dialog state, cited definitions, feed snapshots, grounding, disclaimer.

``FinanceAdvisor.ask(text)`` runs one turn:
1. refuse guaranteed-return, insider-trading and manipulation requests (with an explanation);
2. extract terms, tickers, money, percentages and dates, and update the dialog state;
3. cite definitions (terms named in the turn, then retrieval over the dictionary and the user's documents);
4. take a snapshot of each instrument's feed (replay of the shared history, else the seeded simulation);
5. let the finance adapter draft advice from that context (or, in ``mode="extractive"``, write no draft);
6. check every number of the draft against the snapshot, the user's words and the cited definitions,
   drop sentences with ungrounded numbers, and append the cited figures and the disclaimer.

Steps 1-4 are ``FinanceAdvisor.prepare`` (a ``Turn``: the model prompt, or the finished refusal), step 6 is
``FinanceAdvisor.finish``; ``ask`` is prepare + draft + finish. ``ask_many`` runs one turn of many advisors
with the drafts of all of them generated in one batch (greedy, left-padded; see ``FinanceAdapterModel``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core_model.errors import DSuiteError
from domains.finance.dictionary import Term, load_dictionary
from domains.finance.extraction import extract
from domains.finance.grounding import GroundingCheck, check_numbers, keep_grounded_sentences
from domains.finance.market import Snapshot, latest_snapshot
from domains.finance.policy import (
    Refusal,
    check_no_draft,
    check_request,
    disclaimer,
    simulated_note,
    unknown_symbol_hint,
)
from domains.finance.sentiment import SYSTEM_PROMPT
from domains.finance.state import DialogState, load_dialog_rules

logger = logging.getLogger(__name__)

MODES = ("model", "extractive")
MAX_TERMS = 3
# a retrieved term is cited from this cosine similarity up: the highest of 0.30, 0.35 ... 0.55 that keeps 95%
# of the retrieved gold terms of the annotated dev sentences (0.979; test 48 of 48). Below it retrieval
# offered "security trading status" and "active" for "How is SPY doing right now?"
TERM_MIN_SCORE = 0.40
MAX_SNAPSHOTS = 2
# a draft of fewer words is no answer ("low" to "How is SPY?": the adapter also learned one-word sentiment
# labels); the cited figures and terms answer alone
MIN_DRAFT_WORDS = 3
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
        refused: the refusal rule name, or the ``no_draft`` rule that kept the model from drafting, or None.
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
class Turn:
    """One user turn prepared for drafting (``FinanceAdvisor.prepare``), before the model has written.

    Attributes:
        text: the user's words.
        mentions: what the extractor found in them.
        changed: the state slots the turn changed.
        note: the disclaimer.
        sources: the texts the draft's numbers may come from (user words, figures, definitions, documents).
        terms: dictionary entries cited.
        snapshots: feed snapshots cited.
        documents: passages from the user's documents cited.
        prompt: what the model is asked, or None when no model drafts (extractive mode, a refusal, or a
            ``no_draft`` request).
        answer: the finished Answer when the turn needs no draft at all (a policy refusal), else None.
        no_draft: the policy's ``no_draft`` rule the turn triggered (a buy/sell question on a named
            security): answered with its explanation and the cited figures and terms, never a draft.
    """

    text: str
    mentions: list
    changed: list[str]
    note: str
    sources: list[str] = field(default_factory=list)
    terms: list[Term] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    documents: list[dict] = field(default_factory=list)
    prompt: str | None = None
    answer: Answer | None = None
    no_draft: Refusal | None = None


@dataclass
class FinanceAdapterModel:
    """Drafts answers with the finance adapter (falls back to the bare base when it is not registered)."""

    adapter: str | None = "finance"
    base: str | None = None
    max_new_tokens: int = 80
    label: str = field(default="", init=False)

    @property
    def key(self) -> tuple[str | None, str | None, int]:
        """What decides the drafts: models with equal keys can draft in one batch."""
        return (self.adapter, self.base, self.max_new_tokens)

    def draft(self, prompt: str) -> str:
        """A greedy draft for ``prompt``."""
        return self.draft_many([prompt])[0]

    def draft_many(self, prompts: list[str]) -> list[str]:
        """Greedy drafts for ``prompts``, generated as one left-padded batch.

        A batch gives the same drafts as one prompt at a time up to floating-point rounding: the padded batch
        runs the attention with an explicit mask, which can flip a near-tie token now and then.
        """
        from eval.model_io import complete
        from eval.registry import SystemSpec

        if not prompts:
            return []
        spec = SystemSpec(adapter=self.adapter, base=self.base)
        try:
            texts = complete(
                spec,
                prompts,
                max_new_tokens=self.max_new_tokens,
                system_prompt=SYSTEM_PROMPT,
                batch_size=len(prompts),
            )
            self.label = spec.label
        except DSuiteError as exc:
            if self.adapter is None:
                raise
            logger.warning("finance adapter %r unavailable (%s); answering with the base", self.adapter, exc)
            self.adapter = None
            return self.draft_many(prompts)
        return texts


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
                if meta.get("kind") == "term" and meta.get("score", 0) >= TERM_MIN_SCORE:
                    entry = next(
                        (t for t in self.dictionary.lookup(meta["term"]) if t.ref == meta["ref"]), None
                    )
                    # concepts only, as the extractor (its fibo_kinds): no FIBO property or individual
                    if entry and entry not in terms and entry.is_concept:
                        terms.append(entry)
                elif meta.get("kind") != "term" and meta.get("score", 0) >= 0.3:
                    documents.append(
                        {"source": meta["source"], "text": doc.page_content, "score": meta["score"]}
                    )
        return terms[:MAX_TERMS], documents[:2]

    def ask(self, text: str) -> Answer:
        """Answer one user turn and update the session's state.

        Raises:
            DSuiteError: ``text`` is empty.
        """
        turn = self.prepare(text)
        if turn.answer is not None:
            return turn.answer
        draft = self.model.draft(turn.prompt) if turn.prompt is not None else ""
        return self.finish(turn, draft)

    def prepare(self, text: str) -> Turn:
        """Everything of a turn before the model drafts: extraction, state update, refusal, citations.

        A refused request is finished here (``turn.answer``, already in the history); otherwise call
        ``finish`` with the model's draft of ``turn.prompt`` (or ``""`` when ``turn.prompt`` is None).

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
            answer = Answer(
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
            return Turn(text, mentions, changed, note, sources=user_words, answer=answer)
        terms, documents = self._cite_terms(text, mentions)
        turn_symbols = [m.text.lstrip("$").upper() for m in mentions if m.label == "TICKER"]
        symbols = list(dict.fromkeys(turn_symbols + self.state.tickers()))[:MAX_SNAPSHOTS]
        snapshots = [self.snapshot(s) for s in symbols]
        sources = user_words + [s.summary() for s in snapshots] + [t.definition for t in terms]
        sources += [d["text"] for d in documents]
        no_draft = check_no_draft(text) if turn_symbols else None
        drafts = self.model is not None and no_draft is None
        prompt = self._prompt(text, terms, snapshots, documents) if drafts else None
        return Turn(
            text, mentions, changed, note, sources, terms, snapshots, documents, prompt, no_draft=no_draft
        )

    def finish(self, turn: Turn, draft: str) -> Answer:
        """Check ``draft`` (the model's answer to ``turn.prompt``), assemble the Answer, record the turn.

        Raises:
            DSuiteError: ``turn`` was already finished by ``prepare`` (a refusal).
        """
        if turn.answer is not None:
            raise DSuiteError("This turn was refused in prepare; use turn.answer instead of calling finish.")
        answered_by = "extractive"
        if turn.no_draft is not None:
            answered_by = "policy"
        elif turn.prompt is not None and self.model is not None:
            answered_by = self.model.label or "model"
        sources, terms, snapshots, documents = turn.sources, turn.terms, turn.snapshots, turn.documents
        draft_check = check_numbers(draft, sources)
        body, dropped = keep_grounded_sentences(draft, sources) if draft else ("", [])
        if len(body.split()) < MIN_DRAFT_WORDS:
            body = ""
        if turn.no_draft is not None:
            body = turn.no_draft.explanation
        parts = [body] if body else []
        if snapshots:
            parts.append("Figures: " + " | ".join(s.summary() for s in snapshots))
            simulated = [s.symbol for s in snapshots if s.simulated]
            if simulated:
                parts.append(simulated_note(simulated))
        if terms:
            parts.append("Terms: " + " ".join(f"{t.term}: {t.definition} [{t.source}]" for t in terms))
        if documents:
            parts.append(
                "From your documents: " + " ".join(f"({d['source']}) {d['text']}" for d in documents)
            )
        hint = unknown_symbol_hint(turn.text, turn.mentions)
        if not parts:
            parts.append("I could not find a dictionary term or market figure for that; could you rephrase?")
        if hint:  # "How is ZZZQ doing?": a symbol the extractor does not know
            parts.append(hint)
        parts.append(turn.note)
        final = "\n\n".join(parts)
        self.history.append((turn.text, final))
        return Answer(
            final,
            body,
            self.state.to_dict(),
            turn.changed,
            [t.to_dict() for t in terms],
            [s.to_dict() for s in snapshots],
            check_numbers(final, sources),
            draft_check,
            dropped,
            turn.note,
            turn.no_draft.rule if turn.no_draft is not None else None,
            [m.to_dict() for m in turn.mentions],
            answered_by,
        )

    def _prompt(self, text: str, terms, snapshots, documents) -> str:
        lines = [f"- {t.term}: {t.definition}" for t in terms]
        lines += [f"- {s.summary()}" for s in snapshots]
        lines += [f"- ({d['source']}) {d['text']}" for d in documents]
        return ADVICE_PROMPT.format(
            context="\n".join(lines) or "- (none)", state=self.state.describe(), question=text
        )


def ask_many(advisors: list[FinanceAdvisor], texts: list[str]) -> list[Answer]:
    """One turn of each advisor (``advisors[i].ask(texts[i])``) with all model drafts in one batch.

    Advisors whose models draft alike (same adapter, base and length) share a batch; the adapter fallback
    of ``FinanceAdapterModel`` (adapter not registered -> the base, with a warning) carries over to every
    advisor of the batch. Each advisor must appear once.

    Raises:
        DSuiteError: the lists differ in length, an advisor appears twice, or a text is empty.
    """
    if len(advisors) != len(texts):
        raise DSuiteError(f"ask_many: got {len(advisors)} advisors and {len(texts)} texts; expected pairs.")
    if len({id(a) for a in advisors}) != len(advisors):
        raise DSuiteError("ask_many: an advisor appears twice; ask it its turns one after another instead.")
    turns = [advisor.prepare(text) for advisor, text in zip(advisors, texts, strict=True)]
    drafts = [""] * len(turns)
    groups: dict[tuple, list[int]] = {}
    for i, (advisor, turn) in enumerate(zip(advisors, turns, strict=True)):
        if turn.answer is None and turn.prompt is not None:
            groups.setdefault(advisor.model.key, []).append(i)
    for members in groups.values():
        lead = advisors[members[0]].model
        for i, draft in zip(members, lead.draft_many([turns[i].prompt for i in members]), strict=True):
            drafts[i] = draft
        for i in members[1:]:
            advisors[i].model.adapter, advisors[i].model.label = lead.adapter, lead.label
    return [
        turn.answer if turn.answer is not None else advisor.finish(turn, drafts[i])
        for i, (advisor, turn) in enumerate(zip(advisors, turns, strict=True))
    ]

"""Which industry pipeline a free-text request belongs to: the hub's domain router.

An ``adapters.Router`` (nearest exemplars in faiss) over four labels: the three industries
(``customer_service``, ``medical``, ``finance``) and ``general``, everyday requests none of them handles
(CLINC150's travel, kitchen, home, car, work, small-talk and assistant queries and its out-of-scope ones).
A request whose best label is ``general``, or whose confidence is below the threshold chosen on the
validation requests (a wrong pipeline answer costs twice a missed one, ``routing_cost``), goes to no
pipeline (the hub answers it with the base or a routed adapter), unless a domain claims it by its own reading
(``claims``: customer service, for a request to speak to a person; finance, for a ticker or a term of the
project's glossary; each kept unless it raises the validation cost, recorded in ``meta.json``).

Exemplars come from each domain's own data, read in place:
- customer service: Bitext support requests and the plain requests borrowed for them (``borrowed_intents``);
- medical: sentences of CodiEsp training cases and MTSamples transcriptions;
- finance: TAT-QA questions, questions about the finance dictionary's concepts ("What is a limit order?") and
  the hand-written requests of ``data/finance/hub_requests.json`` (all of them, beside the sample);
- general: CLINC150's everyday queries, and the same four question shapes about words of those queries.
Each source is split by a hash of its text (or note) into exemplars, validation and test, so the figures in
``meta.json`` come from requests the router never saw. The advisor's scripted conversations are test only.

The router is built once (``dsuite build-routes``, about a minute) into ``data/hub/domain_router``.
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core_model.errors import DSuiteError
from eval.data.paths import text_fraction

ROUTER_DIR = Path(__file__).resolve().parents[1] / "data" / "hub" / "domain_router"
FINANCE_REQUESTS = Path(__file__).resolve().parents[1] / "data" / "finance" / "hub_requests.json"
META_FILE = "meta.json"
GENERAL = "general"
DOMAINS = ("customer_service", "medical", "finance")
LABELS = (*DOMAINS, GENERAL)
SPLITS = ("train", "validation", "test")
EXEMPLARS = {"customer_service": 600, "medical": 600, "finance": 600, GENERAL: 2000}  # train rows kept
VALIDATION = {"customer_service": 300, "medical": 300, "finance": 300, GENERAL: 600}
# CLINC150 domains whose queries are personal banking, neither everyday requests nor the advisor's
AMBIGUOUS_CLINC_DOMAINS = ("banking", "credit_cards")
AMBIGUOUS_CLINC_INTENTS = ("order", "order_status")  # a shop's support requests (borrowed_intents)
TERM_TEMPLATES = ("What is {}?", "What does {} mean?", "Explain {}.", "How does {} work?")
THRESHOLDS = tuple(round(0.02 * i, 2) for i in range(36))  # 0.00 .. 0.70
WRONG_PIPELINE_COST = 2.0  # a wrong pipeline answer counts twice a request left to the base (routing_cost)


def _split_of(text: str, train: float = 0.5, validation: float = 0.75) -> str:
    bucket = text_fraction(text)
    return "train" if bucket < train else ("validation" if bucket < validation else "test")


def _sentences(text: str) -> list[str]:
    """Sentences of a note long enough to say something (25-300 characters)."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text or "") if 25 <= len(s.strip()) <= 300]


def _customer_service(split: str) -> list[str]:
    from domains.customer_service import borrowed_intents
    from eval.data import bitext

    return [r["text"] for r in bitext.load(split) + borrowed_intents.load(split)]


def _medical(split: str) -> list[str]:
    from eval.data import codiesp, mtsamples

    if split == "train":
        notes = [c["text"] for c in codiesp.load("train")] + [m["text"] or "" for m in mtsamples.load()]
        return [s for note in notes for s in _sentences(note)]
    # CodiEsp dev cases, half of them (by id) for validation, half for test
    wanted = "validation" if split == "validation" else "test"
    cases = [c for c in codiesp.load("dev") if _split_of(c["id"], 0.0, 0.5) == wanted]
    return [s for c in cases for s in _sentences(c["text"])]


def term_questions(terms) -> list[str]:
    """A question about each term, in one of ``TERM_TEMPLATES`` picked by the term's hash."""
    return [TERM_TEMPLATES[int(text_fraction(t) * 997) % len(TERM_TEMPLATES)].format(t) for t in terms]


def _finance_term_questions(split: str) -> list[str]:
    """Questions about the dictionary's concepts (``Term.is_concept``): nobody asks the advisor "What is
    jurisdiction of Switzerland?" or "What does has premium mean?"."""
    from domains.finance.dictionary import load_dictionary

    terms = {t.term for t in load_dictionary().terms if t.is_concept and _split_of(t.term) == split}
    return term_questions(sorted(terms))


def _finance(split: str) -> list[str]:
    from eval.data import tatqa

    questions = [q["question"] for q in tatqa.load_tatqa() if _split_of(q["question"]) == split]
    return questions + _finance_term_questions(split)


def _finance_requests() -> list[str]:
    """The hand-written advisor requests: exemplars all, never sampled away."""
    return json.loads(FINANCE_REQUESTS.read_text(encoding="utf-8"))["requests"]


def finance_conversation_turns() -> list[str]:
    """The user turns of the advisor's scripted conversations (``finance.grounding``'s; a test set only)."""
    from domains.finance.tasks import grounding

    return [turn["user"] for conversation in grounding.load("test") for turn in conversation["turns"]]


def _clinc_everyday(split: str) -> list[str]:
    from eval.data import clinc150

    domains = clinc150.domains()
    skip = {i for d in AMBIGUOUS_CLINC_DOMAINS for i in domains[d]} | set(AMBIGUOUS_CLINC_INTENTS)
    return [r["text"] for r in clinc150.load(split) if r["label"] not in skip]


@lru_cache(maxsize=1)
def everyday_words() -> tuple[str, ...]:
    """Words of CLINC150's everyday queries (all splits; 4+ letters, no stop word, none that is a word of a
    finance dictionary term): the subjects of the general class's term questions ("What is acupuncture?")."""
    from spacy.lang.en.stop_words import STOP_WORDS

    from domains.finance.dictionary import load_dictionary

    finance = {w for t in load_dictionary().terms for w in re.findall(r"[a-z]+", t.term.lower())}
    words = {
        w
        for split in SPLITS
        for text in _clinc_everyday(split)
        for w in re.findall(r"[a-z]+", text.lower())
        if len(w) >= 4 and w not in STOP_WORDS and w not in finance
    }
    return tuple(sorted(words))


def _general_term_questions(split: str) -> list[str]:
    return term_questions([w for w in everyday_words() if _split_of(w) == split])


def _general(split: str) -> list[str]:
    """Everyday requests, and questions of the finance term questions' shape about everyday words (without
    them, "What is photosynthesis?" went to the advisor: the shape alone pulled a definitional question to
    the dictionary's term questions)."""
    return _clinc_everyday(split) + _general_term_questions(split)


SOURCES = {"customer_service": _customer_service, "medical": _medical, "finance": _finance, GENERAL: _general}
PINNED = {"finance": _finance_requests}  # train rows kept beside the sample of the source


def _sample(texts: list[str], n: int, seed: int) -> list[str]:
    unique = sorted(set(texts))
    random.Random(seed).shuffle(unique)
    return unique[:n]


@lru_cache(maxsize=2)
def _texts_of(split: str) -> frozenset[str]:
    """Every text of ``split`` (lower case), of every label."""
    return frozenset(t.strip().lower() for label in LABELS for t in SOURCES[label](split))


def labelled(split: str, limit: dict[str, int] | None = None) -> list[tuple[str, str | None]]:
    """``(text, expected route)`` pairs of ``split``: a domain name, or None for a general request.

    Validation and test leave out texts that also occur among the exemplars' sources, and test those of
    validation (short clinical sentences such as "Blood cultures were negative." recur across notes;
    CLINC150 repeats some queries).

    Args:
        split: ``train``, ``validation`` or ``test``.
        limit: at most this many texts per label (a fixed sample); None keeps all.
    """
    if split not in SPLITS:
        raise DSuiteError(f"Routing split '{split}' is unknown; expected one of {', '.join(SPLITS)}.")
    seen = frozenset() if split == "train" else _texts_of("train")
    if split == "test":
        seen = seen | _texts_of("validation")
    rows = []
    for seed, label in enumerate(LABELS):
        texts = [t for t in SOURCES[label](split) if t.strip().lower() not in seen]
        if limit and label in limit:
            texts = _sample(texts, limit[label], seed)
        if split == "train" and label in PINNED:
            texts = texts + PINNED[label]()
        rows += [(t, None if label == GENERAL else label) for t in texts]
    return rows


def decide(result, threshold: float, claim: str | None = None) -> str | None:
    """The pipeline of a four-label ``RouteResult``: for ``general`` or below ``threshold``, the domain that
    claims the request by its own reading (``claims``), else None."""
    if result.best is None or result.best == GENERAL or result.confidence < threshold:
        return claim
    return result.best


CLAIM_REASONS = {  # why ``claims`` gives a domain a request, in the order the claims are read
    "customer_service": "it asks to speak to a person",
    "finance": "it names a ticker or a glossary term",
}


def _claimed_by(domain: str, texts: list[str]) -> list[bool]:
    """Whether ``domain``'s own reading claims each text."""
    if domain == "customer_service":
        from domains.customer_service.handover import asks_for_person

        return [asks_for_person(t) is not None for t in texts]
    from domains.finance.extraction import names_finance

    return names_finance(texts)


def claims(texts: list[str], domains: tuple[str, ...] = tuple(CLAIM_REASONS)) -> list[str | None]:
    """The first of ``domains`` that claims each text by its own reading, or None. Customer service claims a
    request to speak to a person (``handover.asks_for_person``; the exemplars left "can I speak to a real
    person" to the base); finance, one that names a ticker or a term of the project's glossary
    (``names_finance``; the exemplars left "How is SPY doing right now?" and "OK, then what is a limit
    order?" to the base)."""
    unknown = sorted(set(domains) - set(CLAIM_REASONS))
    if unknown:
        raise DSuiteError(f"No claim for {', '.join(unknown)}; domains with one: {', '.join(CLAIM_REASONS)}.")
    return first_claims({d: _claimed_by(d, texts) for d in domains}, domains)


def first_claims(readings: dict[str, list[bool]], domains: tuple[str, ...]) -> list[str | None]:
    """Per text, the first of ``domains`` (in ``CLAIM_REASONS``' order) whose reading (``readings``: each
    domain's verdict per text) claims it, or None."""
    order = [d for d in CLAIM_REASONS if d in domains]
    size = len(next(iter(readings.values()), []))
    return [next((d for d in order if readings[d][i]), None) for i in range(size)]


def routing_cost(routed: list[str | None], expected: list[str | None]) -> float:
    """Misses plus ``WRONG_PIPELINE_COST`` per request a pipeline answers that is not its own: a support,
    coding or finance request the base answers still gets an answer and the hint to the tabs, while a
    pipeline answering an everyday question (or another industry's request) gives a wrong one."""
    wrong = sum(got is not None and got != want for got, want in zip(routed, expected, strict=True))
    missed = sum(got is None and want is not None for got, want in zip(routed, expected, strict=True))
    return missed + WRONG_PIPELINE_COST * wrong


def choose_threshold(
    results, expected: list[str | None], claimed: list[str | None] | None = None
) -> tuple[float, float]:
    """The threshold (of ``THRESHOLDS``) with the lowest ``routing_cost``, the lowest threshold among ties;
    returned with its cost per request. ``claimed``: each request's ``claims``, when they are used."""
    best = (0.0, float("inf"))
    claimed = claimed or [None] * len(results)
    for threshold in THRESHOLDS:
        routed = [decide(r, threshold, c) for r, c in zip(results, claimed, strict=True)]
        cost = routing_cost(routed, expected) / max(1, len(expected))
        if cost < best[1]:
            best = (threshold, cost)
    return best


def choose_claims(
    results, expected: list[str | None], texts: list[str]
) -> tuple[tuple[str, ...], float, list[dict]]:
    """The domains whose claims the router reads, and the threshold chosen with them: each domain in turn
    (``CLAIM_REASONS``' order) is kept unless it raises the validation cost (each cost at its own best
    threshold). A claim that changes no validation request is kept: a domain's reading is a narrow rule, and
    the validation rows rarely word a request the way the exemplars miss. Returned with what each try cost.
    Each domain reads the texts once."""
    readings = {domain: _claimed_by(domain, texts) for domain in CLAIM_REASONS}
    used: tuple[str, ...] = ()
    best = choose_threshold(results, expected)
    tried = []
    for domain in CLAIM_REASONS:
        after = choose_threshold(results, expected, first_claims(readings, (*used, domain)))
        kept = after[1] <= best[1]
        tried.append(
            {
                "domain": domain,
                "kept": kept,
                "validation_cost": {"with": round(after[1], 6), "without": round(best[1], 6)},
                "thresholds": {"with": after[0], "without": best[0]},
            }
        )
        used, best = ((*used, domain), after) if kept else (used, best)
    return used, best[0], tried


def routing_accuracy(router: DomainRouter, rows: list[tuple[str, str | None]]) -> dict:
    """Share of ``rows`` routed as expected, and where each expected label's rows went."""
    routed = [r.pipeline for r in router.route_batch([t for t, _ in rows])]
    by_label: dict[str, dict[str, int]] = {}
    for (_, expected), got in zip(rows, routed, strict=True):
        counts = by_label.setdefault(expected or GENERAL, {})
        counts[got or GENERAL] = counts.get(got or GENERAL, 0) + 1
    right = sum(got == expected for (_, expected), got in zip(rows, routed, strict=True))
    return {"accuracy": right / max(1, len(rows)), "n": len(rows), "routed": by_label}


@dataclass(frozen=True)
class DomainRoute:
    """Where one request goes: ``pipeline`` (a domain name, or None), the router's confidence, its best label
    (``general`` included) and the runners-up."""

    pipeline: str | None
    confidence: float
    best: str | None
    runners_up: list[tuple[str, float]] = field(default_factory=list)
    claimed: bool = False  # the pipeline claimed a request its exemplars left to the base (``claims``)


class DomainRouter:
    """The four-label exemplar router with its validation-chosen threshold."""

    def __init__(
        self, router, threshold: float, meta: dict | None = None, claims_used: tuple[str, ...] = ()
    ) -> None:
        self.router = router
        self.threshold = threshold
        self.meta = meta or {}
        self.claims_used = claims_used  # the domains whose claims are read (``claims``)

    def route_batch(self, texts: list[str]) -> list[DomainRoute]:
        """The route of each text."""
        results = self.router.route_batch(texts)
        pipelines = [decide(r, self.threshold) for r in results]
        claimed: list[str | None] = [None] * len(texts)
        left = [i for i, pipeline in enumerate(pipelines) if pipeline is None]
        if self.claims_used and left:  # only what the exemplars leave to the base is read again
            for i, claim in zip(left, claims([texts[i] for i in left], self.claims_used), strict=True):
                claimed[i] = claim
        return [
            DomainRoute(pipeline or claim, float(r.confidence), r.best, list(r.runners_up), claim is not None)
            for r, pipeline, claim in zip(results, pipelines, claimed, strict=True)
        ]

    def route(self, text: str) -> DomainRoute:
        """The route of one request."""
        if not isinstance(text, str) or not text.strip():
            raise DSuiteError("Domain routing needs a request: pass the text a user would type into the hub.")
        return self.route_batch([text])[0]

    def save(self, folder: Path) -> Path:
        self.router.save(folder)
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=1) + "\n", encoding="utf-8")
        return folder


def build_domain_router(out_dir: Path | None = None, evaluate_test: bool = True) -> DomainRouter:
    """Build the router from the exemplars, choose its threshold on validation, measure test, save."""
    from adapters.router import Router

    started = time.time()
    train = labelled("train", EXEMPLARS)
    router = Router(threshold=0.0, k=10)
    for label in LABELS:
        router.add(label, [t for t, e in train if (e or GENERAL) == label])
    validation = labelled("validation", VALIDATION)
    texts, expected = [t for t, _ in validation], [e for _, e in validation]
    results = router.route_batch(texts)
    used, threshold, tried = choose_claims(results, expected, texts)
    router.threshold = threshold
    domain_router = DomainRouter(router, threshold, claims_used=used)
    meta = {
        "labels": list(LABELS),
        "exemplars": {label: sum((e or GENERAL) == label for _, e in train) for label in LABELS},
        "threshold": threshold,
        "claims": {"used": list(used), "tried": tried},
        "validation": routing_accuracy(domain_router, validation),
    }
    if evaluate_test:
        test = labelled("test")
        meta["test"] = {
            label: routing_accuracy(domain_router, [(t, e) for t, e in test if (e or GENERAL) == label])
            for label in LABELS
        }
        seen = _texts_of("train") | _texts_of("validation")
        subsets = {  # parts of the labels above, and the advisor's scripted turns
            "finance_term_questions": ("finance", _finance_term_questions("test")),
            "general_term_questions": (None, _general_term_questions("test")),
            "general_clinc150": (None, _clinc_everyday("test")),
            "finance_conversations": ("finance", finance_conversation_turns()),
        }
        for name, (expected, texts) in subsets.items():
            rows = [(t, expected) for t in texts if t.strip().lower() not in seen]
            meta["test"][name] = routing_accuracy(domain_router, rows)
    meta["build_seconds"] = round(time.time() - started, 1)
    domain_router.meta = meta
    domain_router.save(out_dir or ROUTER_DIR)
    return domain_router


@lru_cache(maxsize=1)
def load_domain_router(folder: Path = ROUTER_DIR) -> DomainRouter:
    """The shipped domain router (built by ``dsuite build-routes``)."""
    from adapters.router import Router

    if not (folder / META_FILE).is_file():
        raise DSuiteError(
            f"No domain router in '{folder}'; build it with `dsuite build-routes` (about a minute)."
        )
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    used = tuple(meta.get("claims", {}).get("used", ()))
    return DomainRouter(Router.load(folder), float(meta["threshold"]), meta, claims_used=used)

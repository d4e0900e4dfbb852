"""Evaluation tasks of the customer-service domain (``cs.*``), registered with ``eval.register_task``.

- ``cs.banking77``: intent accuracy (ours: MiniLM + top-layer LoRA + cosine head; baseline ``minilm_lr``).
- ``cs.clinc150``: in-scope accuracy with rejection, OOS recall/precision (threshold from validation).
- ``cs.bitext_escalation``: escalation recall on ``contact_human_agent`` and false-escalation rate.
- ``cs.bitext_faq``: FAQ retrieval (answer intent @1, recall @3) over the train-split Q/A pairs.
- ``cs.support_answers``: what the assistant does with a request (the right intent's FAQ answer, a wrong
  one, a question back, a handover), on Bitext and on plainly worded requests of other corpora.
- ``cs.multiwoz``: joint goal accuracy and slot F1 (the adapter deciding the rules' candidates; baseline
  ``rules``); MultiWOZ 2.1.
- ``cs.sgd``: zero-shot state tracking on the SGD Payment_1 / RentalCars_3 subset.

The two state-tracking tasks score user turns: one example per user turn (``"<dialogue_id>#<turn>"``).
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from functools import cache, lru_cache

from core_model.errors import DSuiteError
from core_model.paths import PROJECT_DATA
from eval.registry import SystemSpec, Task, register_task

BASELINE_LR = "minilm_lr"
BASELINE_RULES = "rules"


# ---- intents ---------------------------------------------------------------------------------------------
@cache
def _intent_model(name: str):
    from domains.customer_service.intents import IntentModel

    return IntentModel.load(name)


def _baseline_probs(name: str, texts: list[str]):
    """Frozen MiniLM embeddings + the saved logistic regression (the simple baseline row)."""
    import torch
    from safetensors.torch import load_file

    from domains.customer_service.encoder import embed

    model = _intent_model(name)
    path = model.folder / "baseline_lr.safetensors"
    if not path.is_file():
        raise DSuiteError(f"'{path}' is missing; retrain with `dsuite cs train-intents --dataset {name}`.")
    lr = load_file(str(path))
    logits = torch.as_tensor(embed(texts)) @ lr["weight"].T + lr["bias"]
    return torch.softmax(logits, -1).numpy()


def intent_predictions(name: str, texts: list[str], system: SystemSpec):
    """Predictions of the fine-tuned model, or of the ``minilm_lr`` baseline."""
    model = _intent_model(name)
    if system.baseline == BASELINE_LR:
        return model.decide(_baseline_probs(name, texts), model.meta.get("baseline_threshold"))
    if system.baseline:
        raise DSuiteError(f"Unknown baseline '{system.baseline}' for cs intents; expected '{BASELINE_LR}'.")
    return model.predict(texts)


def _intent_task(task: str, dataset: str, loader, score, primary: str, description: str) -> Task:
    def predict(examples, system):
        preds = intent_predictions(dataset, [e["text"] for e in examples], system)
        return [{"label": p.label, "best": p.best, "confidence": round(p.confidence, 4)} for p in preds]

    return Task(
        depends_on=(PROJECT_DATA / "customer_service",),
        name=task,
        dataset=_intent_model(dataset).meta["dataset_card"],
        description=description,
        load=loader,
        predict=predict,
        score=score,
        primary_metric=primary,
        baselines=(BASELINE_LR,),
        splits=("test", "validation"),
        labels=lambda ex, out: ([e["label"] for e in ex], [o["label"] for o in out]),
        batch_size=256,
        needs_model=False,
    )


def _score_accuracy(examples, outputs):
    from eval.metrics import accuracy

    return {"accuracy": accuracy([e["label"] for e in examples], [o["label"] for o in outputs])}


def _score_oos(examples, outputs):
    from eval.metrics import accuracy, oos_metrics

    gold = [e["label"] for e in examples]
    scores = oos_metrics(gold, [o["label"] for o in outputs])
    in_scope = [
        (e["label"], o["best"]) for e, o in zip(examples, outputs, strict=True) if e["label"] != "oos"
    ]
    scores["in_scope_accuracy_no_reject"] = accuracy([g for g, _ in in_scope], [p for _, p in in_scope])
    return scores


def banking77_task() -> Task:
    from eval.data import banking77

    return _intent_task(
        "cs.banking77",
        "banking77",
        banking77.load,
        _score_accuracy,
        "accuracy",
        "BANKING77 intent accuracy (77 intents, 3,080 test queries)",
    )


def clinc150_task() -> Task:
    from eval.data import clinc150

    return _intent_task(
        "cs.clinc150",
        "clinc150",
        clinc150.load,
        _score_oos,
        "in_scope_accuracy",
        "CLINC150 in-scope accuracy with rejection, OOS recall and precision",
    )


# ---- Bitext: escalation and FAQ ----------------------------------------------------------------------------
def escalation_decisions(texts: list[str], system: SystemSpec) -> list[dict]:
    """Single-turn escalation decisions (a fresh conversation per request) with their reasons."""
    from domains.customer_service.escalation import EscalationPolicy
    from domains.customer_service.sentiment import negativity

    out = []
    for text, prediction in zip(texts, intent_predictions("bitext", texts, system), strict=True):
        decision = EscalationPolicy().decide(prediction, negativity(text), answered=True, text=text)
        out.append(
            {
                "escalated": decision is not None,
                "reason": decision.reason if decision else None,
                "intent": prediction.label,
                "confidence": round(prediction.confidence, 4),
            }
        )
    return out


def _score_escalation(examples, outputs):
    from eval.data.bitext import ESCALATION_INTENT

    pos = [o["escalated"] for e, o in zip(examples, outputs, strict=True) if e["label"] == ESCALATION_INTENT]
    neg = [o["escalated"] for e, o in zip(examples, outputs, strict=True) if e["label"] != ESCALATION_INTENT]
    return {
        "escalation_recall": sum(pos) / max(1, len(pos)),
        "false_escalation_rate": sum(neg) / max(1, len(neg)),
        "positives": float(len(pos)),
        "negatives": float(len(neg)),
    }


def bitext_escalation_task() -> Task:
    from eval.data import bitext

    def load(split: str):
        # validation+test gives 27 contact_human_agent requests instead of 10 or 17
        if split == "heldout":
            return bitext.load("validation") + bitext.load("test")
        return bitext.load(split)

    return Task(
        depends_on=(PROJECT_DATA / "customer_service",),
        name="cs.bitext_escalation",
        dataset=bitext.CARD,
        description="Bitext: contact_human_agent escalation recall, false-escalation rate on other requests",
        load=load,
        predict=lambda ex, system: escalation_decisions([e["text"] for e in ex], system),
        score=_score_escalation,
        primary_metric="escalation_recall",
        baselines=(BASELINE_LR,),
        splits=("heldout", "test", "validation"),
        batch_size=256,
        needs_model=False,
    )


@lru_cache(maxsize=1)
def _faq_index():
    from domains.customer_service.faq import FaqIndex

    return FaqIndex.load("bitext")


@lru_cache(maxsize=1)
def _tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    index = _faq_index()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    return vectorizer, vectorizer.fit_transform([r["text"] for r in index.rows])


def faq_predictions(texts: list[str], system: SystemSpec, k: int = 3) -> list[dict]:
    """Top-``k`` FAQ entries per request: MiniLM + faiss (ours) or TF-IDF cosine (baseline ``tfidf``)."""
    index = _faq_index()
    if system.baseline == "tfidf":
        vectorizer, matrix = _tfidf()
        sims = (vectorizer.transform(texts) @ matrix.T).toarray()
        ranked = sims.argsort(1)[:, ::-1][:, :k]
        return [
            {"ids": [index.rows[i]["id"] for i in row], "intents": [index.rows[i]["label"] for i in row]}
            for row in ranked
        ]
    if system.baseline:
        raise DSuiteError(f"Unknown baseline '{system.baseline}' for cs.bitext_faq; expected 'tfidf'.")
    from domains.customer_service.encoder import embed

    hits = index.search(embed(texts), k)
    return [
        {
            "ids": [h.id for h in row],
            "intents": [h.intent for h in row],
            "scores": [round(h.score, 4) for h in row],
        }
        for row in hits
    ]


def _score_faq(examples, outputs):
    top1 = [o["intents"][0] == e["label"] for e, o in zip(examples, outputs, strict=True)]
    top3 = [e["label"] in o["intents"][:3] for e, o in zip(examples, outputs, strict=True)]
    return {"answer_intent_at_1": sum(top1) / len(top1), "recall_at_3": sum(top3) / len(top3)}


def bitext_faq_task() -> Task:
    from eval.data import bitext

    return Task(
        depends_on=(PROJECT_DATA / "customer_service",),
        name="cs.bitext_faq",
        dataset=bitext.CARD,
        description="Bitext FAQ retrieval: the top answer's intent matches the request (@1), recall@3",
        load=bitext.load,
        predict=lambda ex, system: faq_predictions([e["text"] for e in ex], system),
        score=_score_faq,
        primary_metric="answer_intent_at_1",
        baselines=("tfidf",),
        splits=("test", "validation"),
        batch_size=256,
        needs_model=False,
    )


def support_answers(texts: list[str], system: SystemSpec) -> list[dict]:
    """What the assistant does with each request, each in a fresh conversation without generated replies:
    ``source`` (``faq``, ``clarify``, ``handover``, ``small_talk``), the answer's FAQ intent, the intent."""
    if system.baseline:
        raise DSuiteError(f"cs.support_answers has no baseline ('{system.baseline}' given).")
    from domains.customer_service.session import CustomerServiceSession

    out = []
    for text in texts:
        turn = CustomerServiceSession(generate=False).respond(text)
        out.append(
            {
                "source": turn.source,
                "faq_intent": turn.faq_sources[0].intent if turn.faq_sources else None,
                "intent": turn.intent,
                "confidence": round(turn.confidence, 4),
            }
        )
    return out


def _score_support_answers(examples, outputs):
    pairs = list(zip(examples, outputs, strict=True))
    faq = [e["label"] == o["faq_intent"] for e, o in pairs if o["source"] == "faq"]
    n = max(1, len(pairs))
    return {
        "right_answer": sum(faq) / n,
        "wrong_answer": (len(faq) - sum(faq)) / n,
        "asked_back": sum(o["source"] == "clarify" for _, o in pairs) / n,
        "handed_over": sum(o["source"] == "handover" for _, o in pairs) / n,
    }


def support_answers_task() -> Task:
    from domains.customer_service import borrowed_intents
    from eval.data import bitext

    def load(split: str):
        if split == "plain":  # CLINC150 / BANKING77 test requests of intents Bitext shares, never trained on
            return borrowed_intents.load("test")
        return bitext.load(split)

    return Task(
        depends_on=(PROJECT_DATA / "customer_service",),
        name="cs.support_answers",
        dataset=bitext.CARD,
        description="Support assistant, one request per conversation: the right intent's FAQ answer, a "
        "wrong one, a question back, a handover (Bitext; 'plain': borrowed CLINC150/BANKING77 requests)",
        load=load,
        predict=lambda ex, system: support_answers([e["text"] for e in ex], system),
        score=_score_support_answers,
        primary_metric="right_answer",
        splits=("test", "plain", "validation"),
        batch_size=64,
        needs_model=False,
    )


# ---- dialog state tracking ---------------------------------------------------------------------------------
# The unit of evaluation is a user turn (joint goal accuracy and slot F1 are per-turn metrics), so ``--limit``
# counts turns. The trackers are incremental, so predicting a turn means tracking its dialogue up to it.
DST_MEMO_SIZE = 4096  # dialogues (per system) whose tracking this process remembers, least recently used out
# user turns per predict call: about 16 dialogues, whose turns at the same step share a generation batch
DST_BATCH_TURNS = 128
_DST_MEMO: OrderedDict[tuple, object] = OrderedDict()
_DST_MEMO_LOCK = threading.Lock()


def _dst_examples(dialogues, turns_of) -> list[dict]:
    """One example per user turn, id ``"<dialogue_id>#<turn index>"`` (turns counted from 0).

    Each example carries its dialogue id, the turn index, the dialogue's first domain (``service``), the
    turn itself (``system``: the system utterance before it, ``user``, gold ``state`` after it) and
    ``context``: the earlier user turns of the dialogue (``{"system", "user"}``), which a tracker reads first.
    """
    examples = []
    for dialogue in dialogues:
        service = dialogue["domains"][0] if dialogue["domains"] else None
        context: list[dict] = []
        for index, turn in enumerate(turns_of(dialogue)):
            examples.append(
                {
                    "id": f"{dialogue['dialogue_id']}#{index}",
                    "dialogue_id": dialogue["dialogue_id"],
                    "turn": index,
                    "service": service,
                    "system": turn["system"],
                    "user": turn["user"],
                    "state": turn["state"],
                    "context": list(context),
                }
            )
            context.append({"system": turn["system"], "user": turn["user"]})
    return examples


def _dialogue_prefixes(examples: list[dict]) -> dict[str, tuple[list[dict], str | None]]:
    """Per dialogue of the batch (first-seen order): its turns up to the last one asked for, its service."""
    longest: dict[str, dict] = {}
    for example in examples:
        if example["turn"] != len(example["context"]):
            raise DSuiteError(
                f"DST example '{example['id']}' is turn {example['turn']} but carries "
                f"{len(example['context'])} earlier turns; build the examples with the task's loader."
            )
        known = longest.get(example["dialogue_id"])
        if known is None or example["turn"] > known["turn"]:
            longest[example["dialogue_id"]] = example
    return {
        dialogue: ([*e["context"], {"system": e["system"], "user": e["user"]}], e["service"])
        for dialogue, e in longest.items()
    }


def _verifies(schema: str) -> bool:
    """Whether the adapter decides the rule tracker's candidates (MultiWOZ, where rules exist) rather than
    writing each turn's slots (SGD, no rules)."""
    return schema == "multiwoz"


def _memo_key(system: SystemSpec, schema: str) -> tuple:
    """What the states of a dialogue depend on besides its turns: the tracker and, for the model, exactly
    which weights answer (base fingerprint, adapter version and content hash)."""
    if system.baseline == BASELINE_RULES:
        return (BASELINE_RULES,)
    manager = _manager(system.base)
    ref = manager.resolve(system.adapter)  # installs the shipped adapter on a fresh machine
    adapter = (ref.key, ref.content_hash) if ref is not None else None
    if _verifies(schema):  # its decisions also depend on the thresholds
        from domains.customer_service.dst_verifier import verifier_settings

        thresholds = tuple(sorted(verifier_settings()["thresholds"].items()))
        return ("verifier", manager.base.fingerprint, adapter, schema, thresholds)
    return ("adapter", manager.base.fingerprint, adapter, schema)


def _remembered(key: tuple, dialogue: str, turns: list[dict], service: str | None, schema: str):
    """A private copy of how far ``dialogue`` was tracked in this process, or a fresh start."""
    from domains.customer_service.dst_adapter import TrackedDialogue

    with _DST_MEMO_LOCK:
        found = _DST_MEMO.get((key, dialogue))
        if found is not None:
            _DST_MEMO.move_to_end((key, dialogue))
    if found is not None and found.agrees_with(turns):
        return copy.deepcopy(found)
    return TrackedDialogue(domain=service if schema == "sgd" else None)


def _remember(key: tuple, dialogue: str, tracked) -> None:
    with _DST_MEMO_LOCK:
        known = _DST_MEMO.get((key, dialogue))
        if known is None or len(known.turns) < len(tracked.turns) or not known.agrees_with(tracked.turns):
            _DST_MEMO[(key, dialogue)] = tracked
        _DST_MEMO.move_to_end((key, dialogue))
        while len(_DST_MEMO) > DST_MEMO_SIZE:
            _DST_MEMO.popitem(last=False)


def clear_dst_memo() -> None:
    """Forget every dialogue tracked so far in this process."""
    with _DST_MEMO_LOCK:
        _DST_MEMO.clear()


def dst_predictions(examples: list[dict], system: SystemSpec, schema: str = "multiwoz") -> list[dict]:
    """The state after each example's user turn: the rule tracker (baseline ``rules``) or the adapter, which
    on MultiWOZ decides the rules' candidates (``dst_verifier.VerifierTracker``) and elsewhere writes each
    turn's slots (``dst_adapter.AdapterTracker``).

    The examples are grouped by dialogue and each dialogue is tracked from its first turn up to the last
    turn the batch asks for (a turn's prompt depends on the domain focus of the turns before it). How far
    each dialogue got is remembered per system in this process, so a dialogue split across two batches
    goes on where the first batch stopped; the states are the same as tracking whole dialogues.

    Returns:
        Per example ``{"user", "gold", "predicted"}``: the user turn, its gold state and the predicted
        full state after it (the user text and gold state make ``samples.jsonl`` readable on its own).
    """
    if system.baseline and system.baseline != BASELINE_RULES:
        raise DSuiteError(f"Unknown baseline '{system.baseline}' for cs DST; expected '{BASELINE_RULES}'.")
    dialogues = _dialogue_prefixes(examples)
    key = _memo_key(system, schema)
    tracked = {d: _remembered(key, d, turns, service, schema) for d, (turns, service) in dialogues.items()}
    todo = [d for d, (turns, _) in dialogues.items() if len(tracked[d].turns) < len(turns)]
    if system.baseline == BASELINE_RULES:
        for d in todo:
            turns, done = dialogues[d][0], tracked[d]
            for turn in turns[len(done.turns) :]:
                done.record(turn, done.rules.update(turn["user"], turn.get("system", "")))
    elif todo:
        from domains.customer_service.dst_adapter import AdapterTracker
        from domains.customer_service.dst_verifier import VerifierTracker

        manager = _manager(system.base)
        if _verifies(schema):
            tracker = VerifierTracker(manager, adapter=system.adapter)
        else:
            tracker = AdapterTracker(manager, adapter=system.adapter, schema=schema)
        tracker.advance([tracked[d] for d in todo], [dialogues[d][0] for d in todo])
    for d in todo:
        _remember(key, d, tracked[d])
    return [
        {
            "user": e["user"],
            "gold": e["state"],
            "predicted": dict(tracked[e["dialogue_id"]].states[e["turn"]]),
        }
        for e in examples
    ]


@cache
def _manager(base: str | None):
    from adapters import AdapterManager, Registry
    from core_model import load_base

    return AdapterManager(load_base(base), Registry())


def _score_dst(examples, outputs):
    from domains.customer_service.dst_metrics import dst_scores

    return dst_scores([e["state"] for e in examples], [o["predicted"] for o in outputs])


def multiwoz_task() -> Task:
    from domains.customer_service.schema import MULTIWOZ_SLOTS
    from eval.data import multiwoz

    def turns_of(dialogue):
        return [
            {**t, "state": {k: v for k, v in t["state"].items() if k in MULTIWOZ_SLOTS}}
            for t in multiwoz.user_turns(dialogue)
        ]

    def load(split: str) -> list[dict]:
        """``test``, ``dev``, or ``validation``: the dev dialogues the adapter was not trained on."""
        from domains.customer_service.dst_adapter import split_dialogues

        return _dst_examples(split_dialogues(split), turns_of)

    return Task(
        depends_on=(PROJECT_DATA / "customer_service",),
        name="cs.multiwoz",
        dataset=multiwoz.CARD,
        description="MultiWOZ 2.1 (ConvLab-2) test user turns: joint goal accuracy and slot F1 over 30 slots",
        load=load,
        predict=dst_predictions,
        score=_score_dst,
        primary_metric="joint_goal_accuracy",
        baselines=(BASELINE_RULES,),
        splits=("test", "dev", "validation"),
        batch_size=DST_BATCH_TURNS,
        needs_model=True,
    )


def sgd_task() -> Task:
    from eval.data import sgd

    def turns_of(dialogue):
        out, system = [], ""
        for turn in dialogue["turns"]:
            if turn["speaker"] == "SYSTEM":
                system = turn["utterance"]
            else:
                out.append({"system": system, "user": turn["utterance"], "state": turn["state"]})
        return out

    return Task(
        depends_on=(PROJECT_DATA / "customer_service",),
        name="cs.sgd",
        dataset=sgd.CARD,
        description="SGD Payment_1 + RentalCars_3 test user turns: zero-shot joint goal accuracy and slot F1",
        load=lambda split: _dst_examples(sgd.load_dialogues(), turns_of),
        predict=lambda ex, system: dst_predictions(ex, system, schema="sgd"),
        score=_score_dst,
        primary_metric="joint_goal_accuracy",
        baselines=(BASELINE_RULES,),
        splits=("test",),
        batch_size=DST_BATCH_TURNS,
    )


TASKS = {
    "cs.banking77": banking77_task,
    "cs.clinc150": clinc150_task,
    "cs.bitext_escalation": bitext_escalation_task,
    "cs.bitext_faq": bitext_faq_task,
    "cs.support_answers": support_answers_task,
    "cs.multiwoz": multiwoz_task,
    "cs.sgd": sgd_task,
}


def register_tasks() -> None:
    """Register every ``cs.*`` task (idempotent)."""
    for name, factory in TASKS.items():
        register_task(name, factory)

"""Eval tasks of the medical domain: ``medical.assertion``, ``medical.icd``, ``medical.mtsamples_coding``.

None of them calls the language model (``needs_model=False``): the shipped coder ranks with a logistic
ranker (see ``ranker.py``), which measured better than the LM; the SystemSpec's ``baseline`` picks a
baseline row, ``None`` is the project's system.
"""

from __future__ import annotations

from domains.medical.resources import MEDICAL_DATA
from eval.registry import SystemSpec, Task, register_task

NEGATION_LABELS = ("Affirmed", "Negated")


# -- medical.assertion --------------------------------------------------------------------------------------
def _temporality(assertion: dict) -> str:
    categories = {m["category"] for m in assertion["modifiers"]}
    if "HYPOTHETICAL" in categories:
        return "Not particular"
    if "HISTORICAL" in categories:
        return "Historical"
    return "Recent"


def _negspacy_predict(examples: list[dict]) -> list[dict]:
    from negspacy.negation import Negex  # noqa: F401  (registers the "negex" factory)
    from negspacy.termsets import termset

    from domains.medical.assertion import find_concept, sentence_nlp

    nlp = sentence_nlp()
    negex = _negspacy_pipe()
    outputs = []
    for example in examples:
        doc = nlp(example["sentence"])
        offsets = find_concept(example["sentence"], example["concept"])
        span = doc.char_span(*offsets, alignment_mode="expand") if offsets else None
        negated = False
        if span is not None:
            doc.ents = [span.char_span(0, len(span.text), label="CONDITION") or span]
            doc = negex(doc)
            negated = bool(doc.ents[0]._.negex)
        outputs.append(
            {
                "negation": "Negated" if negated else "Affirmed",
                "temporality": "Recent",
                "assertion": "negated" if negated else "present",
            }
        )
    del termset
    return outputs


_NEGEX = None


def _negspacy_pipe():
    """negspacy 1.1's Negex with its default settings (``en_clinical`` termset), as a standalone component."""
    global _NEGEX
    if _NEGEX is None:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        _NEGEX = nlp.add_pipe("negex")
    return _NEGEX


def _assertion_predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    if system.baseline == "negspacy_default":
        return _negspacy_predict(examples)
    from domains.medical.assertion import assert_concepts

    outputs = []
    for result in assert_concepts([(e["sentence"], e["concept"]) for e in examples]):
        outputs.append(
            {
                "negation": "Negated" if result["assertion"] == "negated" else "Affirmed",
                "temporality": _temporality(result),
                "assertion": result["assertion"],
            }
        )
    return outputs


def _assertion_score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    from eval.metrics import per_class_prf

    metrics: dict[str, float] = {}
    negation = per_class_prf(
        [e["negation"] for e in examples], [o["negation"] for o in outputs], NEGATION_LABELS
    )
    for key in ("precision", "recall", "f1"):
        metrics[f"negated_{key}"] = negation["Negated"][key]
        metrics[f"affirmed_{key}"] = negation["Affirmed"][key]
    temporality = per_class_prf(
        [e["temporality"] for e in examples],
        [o["temporality"] for o in outputs],
        ("Recent", "Historical", "Not particular"),
    )
    for label, name in (("Historical", "historical"), ("Not particular", "hypothetical")):
        for key in ("precision", "recall", "f1"):
            metrics[f"{name}_{key}"] = temporality[label][key]
    return metrics


def assertion_task() -> Task:
    """``medical.assertion`` on the shared NegEx/ConText rows."""
    from eval.data import negex

    return Task(
        depends_on=(MEDICAL_DATA,),
        name="medical.assertion",
        dataset=negex.CARD,
        description="Negation and temporality of a given condition in NegEx/ConText sentences (P/R/F1)",
        load=lambda split: negex.load(),
        predict=_assertion_predict,
        score=_assertion_score,
        primary_metric="negated_f1",
        baselines=("negspacy_default",),
        splits=("test",),
        labels=lambda examples, outputs: (
            [e["negation"] for e in examples],
            [o["negation"] for o in outputs],
        ),
        batch_size=256,
        needs_model=False,
    )


# -- medical.icd ---------------------------------------------------------------------------------------
def _icd_predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    from domains.medical.coder import get_coder

    coder = get_coder(system.baseline or "full")
    outputs = []
    for example in examples:
        ranked, _ = coder.rank(example["text"])
        outputs.append(
            {
                "ranked": [c.code for c, _ in ranked],
                "assigned": [c.code for c, _ in coder.assigned(ranked, example["text"])],
            }
        )
    return outputs


def _icd_score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    from eval.metrics import mean_average_precision, mean_recall_at_k, prf

    golds = [set(e["codes"]) for e in examples]
    tp = sum(len(g & set(o["assigned"])) for g, o in zip(golds, outputs, strict=True))
    fp = sum(len(set(o["assigned"]) - g) for g, o in zip(golds, outputs, strict=True))
    fn = sum(len(g - set(o["assigned"])) for g, o in zip(golds, outputs, strict=True))
    precision, recall, f1 = prf(tp, fp, fn)
    rankings = [o["ranked"] for o in outputs]
    return {
        "map": mean_average_precision(rankings, golds),
        "micro_precision": precision,
        "micro_recall": recall,
        "micro_f1": f1,
        "recall_at_10": mean_recall_at_k(rankings, golds, 10),
        "mean_assigned": sum(len(o["assigned"]) for o in outputs) / max(len(outputs), 1),
    }


def icd_task() -> Task:
    """``medical.icd`` on CodiEsp dev (English), diagnosis codes."""
    from eval.data import codiesp

    return Task(
        depends_on=(MEDICAL_DATA,),
        name="medical.icd",
        dataset=codiesp.CARD,
        description="ICD-10-CM diagnosis coding of CodiEsp cases (MAP, micro-F1 at the threshold, recall@10)",
        load=lambda split: codiesp.load(split),
        predict=_icd_predict,
        score=_icd_score,
        primary_metric="map",
        baselines=("dictionary", "retrieval", "rules+retrieval"),
        splits=("dev", "train"),
        batch_size=10,
        needs_model=False,
    )


# -- medical.mtsamples_coding --------------------------------------------------------------------------
def _mts_load(split: str) -> list[dict]:
    from eval.data import mtsamples

    return [
        {"id": r["id"], "text": r["text"], "specialty": r["specialty"]}
        for r in mtsamples.load(limit=300, dedupe=True)
    ]


def _mts_predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    from core_model.errors import DSuiteError
    from domains.medical.coder import get_coder, validate_result

    coder = get_coder(system.baseline or "rules+retrieval")
    outputs = []
    for example in examples:
        result = coder.code(example["text"], example["id"])
        try:
            validate_result(result)
            valid = True
        except DSuiteError:
            valid = False
        outputs.append(
            {
                "valid": valid,
                "n_codes": len(result["codes"]),
                "n_excluded": len(result["excluded"]),
                "evidence_ok": all(
                    c["evidence"]
                    and all(
                        e["assertion"] not in ("negated", "family", "hypothetical") for e in c["evidence"]
                    )
                    for c in result["codes"]
                ),
            }
        )
    return outputs


def _mts_score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    n = max(len(outputs), 1)
    return {
        "schema_valid": sum(o["valid"] for o in outputs) / n,
        "evidence_ok": sum(o["evidence_ok"] for o in outputs) / n,
        "notes_with_codes": sum(o["n_codes"] > 0 for o in outputs) / n,
        "codes_per_note": sum(o["n_codes"] for o in outputs) / n,
        "excluded_per_note": sum(o["n_excluded"] for o in outputs) / n,
    }


def mtsamples_task() -> Task:
    """``medical.mtsamples_coding``: a coding smoke test on 300 distinct MTSamples notes (no gold codes)."""
    from eval.data import mtsamples

    return Task(
        depends_on=(MEDICAL_DATA,),
        name="medical.mtsamples_coding",
        dataset=mtsamples.CARD,
        description="Coding smoke test on 300 distinct MTSamples notes: valid JSON, evidence for every code",
        load=_mts_load,
        predict=_mts_predict,
        score=_mts_score,
        primary_metric="schema_valid",
        baselines=("dictionary", "full"),
        splits=("test",),
        batch_size=20,
        needs_model=False,
    )


TASKS = {
    "medical.assertion": assertion_task,
    "medical.icd": icd_task,
    "medical.mtsamples_coding": mtsamples_task,
}


def register_tasks() -> None:
    """Register the medical tasks (idempotent)."""
    for name, factory in TASKS.items():
        register_task(name, factory)

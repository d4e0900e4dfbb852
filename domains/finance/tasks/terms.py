"""``finance.terms``: term extraction precision/recall on the project's annotated set.

Gold: ``data/finance/terms_annotated.jsonl`` (card ``finance_terms_annotated``); a predicted span counts
only when its start, end and label equal a gold span. Split ``dev`` was used while writing the rules,
``test`` was held out.
"""

from __future__ import annotations

from domains.finance.resources import FINANCE_DATA
from eval.registry import SystemSpec, Task

SPAN_LABELS = ("TERM", "TICKER", "MONEY", "PERCENT", "DATE")


def load(split: str) -> list[dict]:
    """Annotated sentences of ``split``."""
    from domains.finance.annotations import load_annotated

    return load_annotated(split)


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:  # noqa: ARG001 - rules only
    """The extractor's spans per sentence."""
    from domains.finance.extraction import extract

    return [{"spans": [m.to_dict() for m in extract(e["text"])]} for e in examples]


def _key(span: dict) -> tuple:
    return (span["start"], span["end"], span["label"])


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    """Micro precision, recall and F1 over exact spans, overall and per label."""
    from eval.metrics import prf

    counts = {label: [0, 0, 0] for label in (*SPAN_LABELS, "all")}
    for example, output in zip(examples, outputs, strict=True):
        gold = {_key(s) for s in example["spans"]}
        pred = {_key(s) for s in output["spans"]}
        for label in SPAN_LABELS:
            g = {k for k in gold if k[2] == label}
            p = {k for k in pred if k[2] == label}
            for bucket in (counts[label], counts["all"]):
                bucket[0] += len(g & p)
                bucket[1] += len(p - g)
                bucket[2] += len(g - p)
    metrics = {}
    for label, (tp, fp, fn) in counts.items():
        precision, recall, f1 = prf(tp, fp, fn)
        prefix = "" if label == "all" else f"{label.lower()}_"
        metrics.update({f"{prefix}precision": precision, f"{prefix}recall": recall, f"{prefix}f1": f1})
    return metrics


def build_task() -> Task:
    """The task object."""
    return Task(
        depends_on=(FINANCE_DATA,),
        name="finance.terms",
        dataset="finance_terms_annotated",
        description="Finance term/ticker/money/percent/date extraction: exact-span P/R/F1",
        load=load,
        predict=predict,
        score=score,
        primary_metric="f1",
        splits=("test", "dev", "all"),
        needs_model=False,
        batch_size=32,
    )

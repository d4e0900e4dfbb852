"""``finance.sentiment``: Financial PhraseBank sentence sentiment (accuracy, macro-F1).

Systems: the base, the finance adapter (``--adapter finance``), and baselines ``lexicon`` (word lists)
and ``majority`` (always ``neutral``). The model picks the label by next-token likelihood.
Data: the ``test`` split of ``eval.data.phrasebank.fpb_split`` (every 5th sentence id, agreement >= 75%).
"""

from __future__ import annotations

from domains.finance.resources import FINANCE_DATA
from domains.finance.sentiment import LABELS, SYSTEM_PROMPT, lexicon_sentiment, sentiment_prompt
from eval.registry import SystemSpec, Task


def load(split: str) -> list[dict]:
    """Test (or train) sentences with their gold label."""
    from eval.data.phrasebank import fpb_split

    return [
        {"id": f"fpb-{r['id']}", "sentence": r["sentence"], "label": r["label"]} for r in fpb_split(split)
    ]


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    """A label per sentence from the system."""
    if system.baseline == "lexicon":
        return [{"label": lexicon_sentiment(e["sentence"])} for e in examples]
    if system.baseline == "majority":
        return [{"label": "neutral"} for _ in examples]
    from domains.finance.scoring import choose_labels

    prompts = [sentiment_prompt(e["sentence"]) for e in examples]
    return choose_labels(system, prompts, LABELS, system_prompt=SYSTEM_PROMPT)


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    """Accuracy and macro-F1 over the three labels."""
    from eval.metrics import accuracy, macro_f1

    gold, pred = [e["label"] for e in examples], [o["label"] for o in outputs]
    return {"accuracy": accuracy(gold, pred), "macro_f1": macro_f1(gold, pred, labels=list(LABELS))}


def labels(examples: list[dict], outputs: list[dict]) -> tuple[list, list]:
    """Gold and predicted labels for the confusion matrix."""
    return [e["label"] for e in examples], [o["label"] for o in outputs]


def build_task() -> Task:
    """The task object."""
    return Task(
        depends_on=(FINANCE_DATA,),
        name="finance.sentiment",
        dataset="financial_phrasebank",
        description="Financial PhraseBank sentiment (3 labels): accuracy and macro-F1",
        load=load,
        predict=predict,
        score=score,
        primary_metric="macro_f1",
        baselines=("lexicon", "majority"),
        splits=("test", "train"),
        labels=labels,
        batch_size=16,
    )

"""``finance.tatqa``: TAT-QA hybrid table+text questions (exact match, numeric match).

Splits (ours; TAT-QA's public test set is the only one with gold answers here): ``sample`` = every 10th
question in file order (167, the default for quick runs), ``test`` = all 1,663. The model sees the table
(pipe-separated rows) and the paragraphs, cut to ``MAX_CONTEXT`` characters, and answers in at most 24
tokens. Baseline ``table_lookup``: the cell at the row sharing most words with the question and the column
whose header appears in it (else the first numeric column). ``score`` is numeric match (1% tolerance) when
the gold answer is a number, exact match otherwise.
"""

from __future__ import annotations

import re

from domains.finance.resources import FINANCE_DATA
from eval.registry import SystemSpec, Task

MAX_CONTEXT = 1500
PROMPT = "{context}\n\nQuestion: {question}\nAnswer with only the value or the words from the table or text."


def _reference(answer) -> str:
    return ", ".join(str(a) for a in answer) if isinstance(answer, list) else str(answer)


def load(split: str) -> list[dict]:
    """Questions of ``split`` with table, paragraphs and gold answer."""
    from eval.data.tatqa import load_tatqa

    rows = load_tatqa()
    chosen = rows[::10] if split == "sample" else rows
    return [
        {
            "id": r["uid"],
            "question": r["question"],
            "answer": _reference(r["answer"]),
            "numeric": r["answer_type"] in ("arithmetic", "count") or isinstance(r["answer"], int | float),
            "scale": r["scale"],
            "table": r["table"],
            "paragraphs": r["paragraphs"],
        }
        for r in chosen
    ]


def context_text(example: dict) -> str:
    """Table rows then paragraphs, cut to ``MAX_CONTEXT`` characters."""
    table = "\n".join(" | ".join(cell.strip() for cell in row) for row in example["table"])
    return (table + "\n\n" + "\n".join(example["paragraphs"]))[:MAX_CONTEXT]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def table_lookup(example: dict) -> str:
    """The baseline's answer: best-matching row x best-matching (or first numeric) column."""
    table = example["table"]
    if len(table) < 2:
        return ""
    question = _words(example["question"])
    header = table[0]
    column = next((i for i, h in enumerate(header) if h.strip() and _words(h) & question and i > 0), None)
    row = max(table[1:], key=lambda r: len(_words(r[0] if r else "") & question))
    if column is None:
        column = next((i for i, c in enumerate(row) if i > 0 and re.search(r"\d", c)), 0)
    return row[column].strip() if column < len(row) else ""


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    """An answer per question."""
    if system.baseline == "table_lookup":
        return [{"answer": table_lookup(e)} for e in examples]
    from eval.model_io import complete

    prompts = [PROMPT.format(context=context_text(e), question=e["question"]) for e in examples]
    return [{"answer": a} for a in complete(system, prompts, max_new_tokens=24, batch_size=4)]


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    """Exact match, numeric match on numeric questions, and the combined score."""
    from eval.metrics import exact_match, numeric_match

    em = [exact_match(o["answer"], e["answer"]) for e, o in zip(examples, outputs, strict=True)]
    numeric = [
        numeric_match(o["answer"], e["answer"])
        for e, o in zip(examples, outputs, strict=True)
        if e["numeric"]
    ]
    combined = [
        numeric_match(o["answer"], e["answer"]) if e["numeric"] else exact_match(o["answer"], e["answer"])
        for e, o in zip(examples, outputs, strict=True)
    ]
    return {
        "score": sum(combined) / len(combined),
        "exact_match": sum(em) / len(em),
        "numeric_match": sum(numeric) / len(numeric) if numeric else 0.0,
    }


def build_task() -> Task:
    """The task object."""
    return Task(
        depends_on=(FINANCE_DATA,),
        name="finance.tatqa",
        dataset="tatqa_test",
        description="TAT-QA table+text financial QA: numeric match / exact match",
        load=load,
        predict=predict,
        score=score,
        primary_metric="score",
        baselines=("table_lookup",),
        splits=("sample", "test"),
        batch_size=8,
    )

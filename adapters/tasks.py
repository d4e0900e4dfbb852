"""Classification tasks for adapters: rows ``{"text", "label"}``, an instruction template and a label set.

The adapter learns to answer the label; it is evaluated by option likelihood (the label the model finds most
likely among the task's labels), which is fair to the bare base model too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core_model.errors import DSuiteError

SYSTEM = "You are a precise classifier. Answer with the label only."


@dataclass(frozen=True)
class LabelTask:
    """A text-classification task an adapter is trained and evaluated on."""

    name: str
    instruction: str  # contains "{text}"
    labels: tuple[str, ...]
    train: tuple[dict, ...] = field(default=(), repr=False)
    test: tuple[dict, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if "{text}" not in self.instruction:
            raise DSuiteError(
                f"Task '{self.name}': the instruction must contain '{{text}}', got {self.instruction!r}."
            )
        if len(self.labels) < 2:
            raise DSuiteError(f"Task '{self.name}' needs at least two labels, got {list(self.labels)}.")
        for split, rows in (("train", self.train), ("test", self.test)):
            bad = [r for r in rows if r.get("label") not in self.labels or not str(r.get("text", "")).strip()]
            if bad:
                raise DSuiteError(
                    f"Task '{self.name}' {split} row {bad[0]!r} has no text or a label outside "
                    f"{list(self.labels)}."
                )

    def messages(self, text: str) -> list[dict]:
        """The chat turns the adapter sees for ``text``."""
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": self.instruction.format(text=text)},
        ]

    def records(self, rows: Sequence[dict] | None = None) -> list[dict]:
        """Training records in chat format (``{"messages": [...]}``)."""
        return [
            {"messages": [*self.messages(r["text"]), {"role": "assistant", "content": r["label"]}]}
            for r in (self.train if rows is None else rows)
        ]

    def spec(self) -> dict:
        """JSON-able description (without rows)."""
        return {"name": self.name, "instruction": self.instruction, "labels": list(self.labels)}


def read_rows(path: str | Path) -> list[dict]:
    """Rows ``{"text", "label"}`` of a JSONL file (errors name the line)."""
    path = Path(path)
    if not path.is_file():
        raise DSuiteError(
            f'Task data file \'{path}\' not found; expected JSONL rows {{"text": ..., "label": ...}}.'
        )
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DSuiteError(f"{path}:{number}: not valid JSON ({exc.msg}).") from exc
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("text"), str)
            or not isinstance(row.get("label"), str)
        ):
            raise DSuiteError(f'{path}:{number}: expected {{"text": str, "label": str}}, got {line[:100]}')
        rows.append(row)
    return rows


def load_tasks(spec_file: str | Path) -> dict[str, LabelTask]:
    """Tasks described by a ``tasks.json`` (``{name: {"instruction", "labels", "train", "test"}}``)."""
    spec_file = Path(spec_file)
    if not spec_file.is_file():
        raise DSuiteError(f"Task spec '{spec_file}' not found (expected a tasks.json).")
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    tasks = {}
    for name, entry in spec.items():
        missing = {"instruction", "labels", "train", "test"} - set(entry)
        if missing:
            raise DSuiteError(f"{spec_file}: task '{name}' lacks {sorted(missing)}.")
        tasks[name] = LabelTask(
            name,
            entry["instruction"],
            tuple(entry["labels"]),
            tuple(read_rows(spec_file.parent / entry["train"])),
            tuple(read_rows(spec_file.parent / entry["test"])),
        )
    return tasks


def accuracy(
    manager,
    task: LabelTask,
    adapter: str | None,
    rows: Sequence[dict],
    batch: int = 6,
    progress: bool = False,
) -> float:
    """Share of ``rows`` whose most likely label (under ``adapter``, ``None`` = base) is the gold one."""
    return float(
        sum(
            p == r["label"]
            for p, r in zip(
                predict(manager, task, adapter, [r["text"] for r in rows], batch, progress), rows, strict=True
            )
        )
        / len(rows)
    )


def predict(
    manager,
    task: LabelTask,
    adapter: str | None,
    texts: Sequence[str],
    batch: int = 8,
    progress: bool = False,
) -> list[str]:
    """The most likely label of each text under ``adapter`` (``None``: bare base).

    When the labels begin with distinct tokens, the choice is the label whose first token is most likely
    (one forward pass over the prompt); otherwise the full label log-likelihoods are compared.
    """
    from tqdm.auto import tqdm

    from adapters.requests import GenerationRequest

    out = []
    for start in tqdm(
        range(0, len(texts), batch), desc=f"eval {task.name}", disable=not progress, leave=False
    ):
        chunk = texts[start : start + batch]
        requests = [GenerationRequest(messages=task.messages(t), adapter=adapter) for t in chunk]
        scored = manager.first_token_choice(requests, task.labels)  # labels start with distinct tokens
        if scored is None:
            scored = manager.score_batch(requests, [task.labels] * len(chunk))
        for scores in scored:
            out.append(task.labels[max(range(len(scores)), key=scores.__getitem__)])
    return out

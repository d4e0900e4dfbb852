"""Training records: ``{"messages": [...]}`` or ``{"prompt", "completion"}`` JSONL, tokenizing, batching.

A record becomes a pair (prompt tokens, completion tokens). The prompt is the chat-formatted conversation
up to the last assistant turn (with the generation prompt); the completion is that assistant turn plus the
end-of-turn token. The loss is taken on completion tokens only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from core_model.errors import DSuiteError
from core_model.generation import as_messages

_ROLES = {"system", "user", "assistant"}
FORMAT_HELP = (
    'Each line must be a JSON object, either {"prompt": "...", "completion": "..."} or '
    '{"messages": [{"role": "user", "content": "..."}, ..., {"role": "assistant", "content": "..."}]} '
    "ending with an assistant turn."
)


@dataclass(frozen=True)
class Example:
    """One training record: the conversation before the answer and the answer to learn."""

    messages: tuple[dict, ...]  # conversation without the final assistant turn
    completion: str
    line: int = 0

    @property
    def prompt_text(self) -> str:
        """The last user turn (what a router or an evaluation sees)."""
        for message in reversed(self.messages):
            if message["role"] == "user":
                return message["content"]
        return self.messages[-1]["content"]


def parse_record(record: object, where: str) -> Example:
    """Validate one record and turn it into an :class:`Example`.

    Raises:
        DSuiteError: naming ``where`` (file:line) and the expected formats.
    """
    if not isinstance(record, dict):
        raise DSuiteError(f"{where}: expected a JSON object, got {type(record).__name__}. {FORMAT_HELP}")
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or len(messages) < 2:
            raise DSuiteError(f"{where}: 'messages' must be a list of at least two turns. {FORMAT_HELP}")
        for index, message in enumerate(messages):
            if (
                not isinstance(message, dict)
                or message.get("role") not in _ROLES
                or not isinstance(message.get("content"), str)
            ):
                raise DSuiteError(
                    f"{where}: turn {index} is {json.dumps(message)[:120]}; expected "
                    f"{{'role': one of {sorted(_ROLES)}, 'content': text}}. {FORMAT_HELP}"
                )
        if messages[-1]["role"] != "assistant":
            raise DSuiteError(
                f"{where}: the last turn has role '{messages[-1]['role']}', expected 'assistant'."
            )
        if not messages[-1]["content"].strip():
            raise DSuiteError(f"{where}: the final assistant turn is empty; give the answer to learn.")
        return Example(tuple(dict(m) for m in messages[:-1]), messages[-1]["content"])
    if "prompt" in record or "completion" in record:
        prompt, completion = record.get("prompt"), record.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str) or not completion.strip():
            raise DSuiteError(
                f"{where}: 'prompt' and 'completion' must both be non-empty strings, got "
                f"prompt={type(prompt).__name__}, completion={type(completion).__name__}. {FORMAT_HELP}"
            )
        return Example(tuple(as_messages(prompt)), completion)
    raise DSuiteError(
        f"{where}: record has keys {sorted(record)}, none of 'messages', 'prompt'. {FORMAT_HELP}"
    )


def load_examples(path: str | Path) -> list[Example]:
    """Read and validate a training JSONL file.

    Raises:
        DSuiteError: the file is missing, empty, or a line is malformed (the error names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DSuiteError(f"Training data file '{path}' not found. Give a JSONL file. {FORMAT_HELP}")
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DSuiteError(f"{path}:{number}: not valid JSON ({exc.msg}). {FORMAT_HELP}") from exc
            example = parse_record(record, f"{path}:{number}")
            examples.append(Example(example.messages, example.completion, number))
    if len(examples) < 2:
        raise DSuiteError(f"{path}: {len(examples)} usable record(s); need at least 2 (one is held out).")
    return examples


def split_examples(examples: Sequence[Example], eval_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded train / held-out split (at least one record on each side)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_fraction)))
    held = sorted(order[:n_eval])
    train = sorted(order[n_eval:])
    return [examples[i] for i in train], [examples[i] for i in held]


def encode(
    tokenizer, example: Example, max_length: int, system: str | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted prompt and of the completion (+ end-of-turn token).

    The prompt is cut from the left when the pair is longer than ``max_length``; the completion is kept.
    """
    prompt = tokenizer.apply_chat_template(
        as_messages(list(example.messages), system), tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        completion_ids = completion_ids + [tokenizer.eos_token_id]
    completion_ids = completion_ids[: max_length - 1]
    room = max_length - len(completion_ids)
    return prompt_ids[-room:], completion_ids


def length_buckets(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of indices with similar lengths (little padding), in a shuffled order."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def iter_epochs(lengths: Sequence[int], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless length-bucketed batches, reshuffled each epoch."""
    epoch = 0
    while True:
        yield from length_buckets(lengths, batch_size, seed + epoch)
        epoch += 1


def write_jsonl(path: str | Path, records: Sequence[dict]) -> Path:
    """Write records as JSONL (one object per line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path

"""Training records: ``{"messages": [...]}`` or ``{"prompt", "completion"}`` JSONL, tokenizing, batching.

A record becomes a pair (prompt tokens, completion tokens). The prompt is the chat-formatted conversation
up to the last assistant turn (with the generation prompt); the completion is that assistant turn plus the
end-of-turn token. The loss is taken on completion tokens only.
"""

from __future__ import annotations

import codecs
import json
import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core_model.errors import DSuiteError
from core_model.generation import as_messages

logger = logging.getLogger(__name__)

_ROLES = {"system", "user", "assistant"}
MAX_LISTED = 10  # bad records listed by name in an error; the rest are counted
FORMAT_HELP = (
    'Each line must be a JSON object, either {"prompt": "...", "completion": "..."} or '
    '{"messages": [{"role": "user", "content": "..."}, ..., {"role": "assistant", "content": "..."}]} '
    "ending with an assistant turn."
)


# question/answer pairs as other data sets name them, for the error that says which names to use
_PAIR_NAMES = (
    ("question", "answer"),
    ("instruction", "response"),
    ("instruction", "output"),
    ("input", "output"),
    ("query", "response"),
    ("text", "label"),
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


def record_problem(record: object) -> str | None:
    """What is wrong with one parsed JSON record (``None`` when it is a valid training record)."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list) or len(messages) < 2:
            return "'messages' must be a list of at least two turns"
        for index, message in enumerate(messages):
            if (
                not isinstance(message, dict)
                or message.get("role") not in _ROLES
                or not isinstance(message.get("content"), str)
            ):
                return (
                    f"turn {index} is {json.dumps(message)[:120]}; expected "
                    f"{{'role': one of {sorted(_ROLES)}, 'content': text}}"
                )
        if messages[-1]["role"] != "assistant":
            return f"the last turn has role '{messages[-1]['role']}', expected 'assistant'"
        if not messages[-1]["content"].strip():
            return "the final assistant turn is empty; give the answer to learn"
        return None
    if "prompt" in record or "completion" in record:
        problems = []
        for key in ("prompt", "completion"):
            value = record.get(key)
            if key not in record:
                problems.append(f"missing '{key}'")
            elif not isinstance(value, str):
                problems.append(f"'{key}' is {type(value).__name__}, not text")
            elif not value.strip():
                problems.append(f"'{key}' is empty")
        if problems:
            return f"{' and '.join(problems)} ('prompt' and 'completion' must both be non-empty text)"
        return None
    known = f"record has keys {sorted(record)}, none of 'messages', 'prompt', 'completion'"
    pair = [(q, a) for q, a in _PAIR_NAMES if q in record and a in record]
    if pair:  # a question/answer pair under other names: say which names to use
        question, answer = pair[0]
        return f"{known}; rename '{question}' to 'prompt' and '{answer}' to 'completion'"
    return known


def parse_record(record: object, where: str) -> Example:
    """Validate one record and turn it into an :class:`Example`.

    Raises:
        DSuiteError: naming ``where`` (file:line), what is wrong and the expected formats.
    """
    problem = record_problem(record)
    if problem is not None:
        raise DSuiteError(f"{where}: {problem}. {FORMAT_HELP}")
    if "messages" in record:
        messages = record["messages"]
        return Example(tuple(dict(m) for m in messages[:-1]), messages[-1]["content"])
    return Example(tuple(as_messages(record["prompt"])), record["completion"])


def _decode(raw: bytes, number: int) -> tuple[str | None, str | None]:
    """(text, None) for a UTF-8 line (a BOM on line 1 is dropped), else (None, what is wrong)."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8"), None
    except UnicodeDecodeError as exc:
        return None, (
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); save it as UTF-8"
        )


# a table or a binary file given for JSONL: one message for the file instead of an error per line
TABLE_SUFFIXES = {".csv": "CSV", ".tsv": "TSV", ".parquet": "Parquet", ".xlsx": "Excel", ".xls": "Excel"}
CSV_TO_JSONL = "import csv, json, sys; [print(json.dumps(r)) for r in csv.DictReader(open(sys.argv[1]))]"
ARRAY_TO_JSONL = "import json, sys; [print(json.dumps(r)) for r in json.load(open(sys.argv[1]))]"


def _convert_command(code: str, path: Path) -> str:
    """The shell command that runs ``code`` on ``path`` into a ``.jsonl`` file beside it."""
    return f"python -c \"{code}\" '{path}' > '{path.with_suffix('.jsonl')}'"


def _refuse_whole_file(path: Path) -> None:
    """Refuse a path that is no JSONL file at all, saying what it is and how to make one: missing, a folder, a
    CSV/TSV/Parquet/Excel file, a JSON array (one document, not one record per line)."""
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.jsonl"))[:3]
        hint = f" (it holds {', '.join(inside)})" if inside else ""
        raise DSuiteError(f"Training data '{path}' is a folder; give the JSONL file{hint}. {FORMAT_HELP}")
    if not path.is_file():
        raise DSuiteError(f"Training data file '{path}' not found. Give a JSONL file. {FORMAT_HELP}")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        convert = ""
        if kind == "CSV":
            convert = " A CSV with prompt and completion columns converts with: "
            convert += _convert_command(CSV_TO_JSONL, path) + "."
        raise DSuiteError(
            f"Training data '{path}' is a {kind} file; training reads JSON Lines (.jsonl), one record per "
            f"line.{convert} {FORMAT_HELP}"
        )
    with path.open("rb") as handle:
        start = handle.read(64).lstrip(codecs.BOM_UTF8).lstrip()
    if start.startswith(b"["):
        raise DSuiteError(
            f"Training data '{path}' is a JSON array (one document), not JSON Lines; write one record per "
            f"line, e.g. {_convert_command(ARRAY_TO_JSONL, path)}. {FORMAT_HELP}"
        )


def read_examples(path: str | Path) -> tuple[list[Example], list[str]]:
    """Read a training JSONL file: (valid examples, one ``file:line: problem`` per bad record).

    Blank lines are skipped; a UTF-8 byte-order mark is accepted.

    Raises:
        DSuiteError: the file is missing or unreadable, or no JSONL file (a folder, a table, a JSON array).
    """
    path = Path(path)
    _refuse_whole_file(path)
    examples, problems = [], []
    try:
        with path.open("rb") as handle:
            if handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                raise DSuiteError(f"{path}: the file is UTF-16 text, not UTF-8; save it as UTF-8.")
            handle.seek(0)
            for number, raw in enumerate(handle, start=1):
                line, problem = _decode(raw, number)
                if line is not None and not line.strip():
                    continue
                if problem is None:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        problem = f"not valid JSON ({exc.msg})"
                    else:
                        problem = record_problem(record)
                if problem is not None:
                    problems.append(f"{path}:{number}: {problem}")
                    continue
                example = parse_record(record, f"{path}:{number}")
                examples.append(Example(example.messages, example.completion, number))
    except OSError as exc:
        raise DSuiteError(f"Cannot read training data file '{path}': {exc}.") from exc
    return examples, problems


def describe_bad_records(problems: Sequence[str], total: int) -> str:
    """A listing of bad records: the first :data:`MAX_LISTED`, then a count of the rest."""
    shown = "\n".join(f"  {problem}" for problem in problems[:MAX_LISTED])
    rest = len(problems) - MAX_LISTED
    more = f"\n  ... and {rest} more bad record(s)." if rest > 0 else ""
    return f"{len(problems)} of {total} record(s) are bad:\n{shown}{more}"


def load_examples(path: str | Path, skip_bad_rows: bool = False) -> list[Example]:
    """Read and validate a training JSONL file.

    Args:
        path: the JSONL file.
        skip_bad_rows: keep the valid records and log the bad ones (default: any bad record is an error).

    Raises:
        DSuiteError: the file is missing or has fewer than 2 usable records, or (unless ``skip_bad_rows``)
            some records are malformed: the error lists them all (file:line: what is wrong), up to
            :data:`MAX_LISTED`, with a count of the rest.
    """
    examples, problems = read_examples(path)
    return usable_examples(path, examples, problems, skip_bad_rows)


def usable_examples(
    path: str | Path, examples: list[Example], problems: Sequence[str], skip_bad_rows: bool = False
) -> list[Example]:
    """What :func:`load_examples` returns for what :func:`read_examples` found (same errors)."""
    path = Path(path)
    total = len(examples) + len(problems)
    if problems:
        listing = describe_bad_records(problems, total)
        if not skip_bad_rows:
            skip = (
                f"or skip them (`--skip-bad-rows`; skip_bad_rows=True in Python) to train on the "
                f"{len(examples)} good record(s)"
                if len(examples) >= 2
                else f"(only {len(examples)} record(s) are good; training needs at least 2)"
            )
            raise DSuiteError(f"{path}: {listing}\nFix these lines {skip}. {FORMAT_HELP}")
        logger.warning("%s: skipping bad records: %s", path, listing)
    if len(examples) < 2:
        raise DSuiteError(f"{path}: {len(examples)} usable record(s); need at least 2 (one is held out).")
    _warn_repeats(path, examples)
    return examples


def _warn_repeats(path: Path, examples: Sequence[Example]) -> None:
    """Log a warning when records repeat an earlier one word for word (kept: a repeat may be meant as weight,
    but an export run twice or a file appended to itself usually is not, and a repeat can land in both the
    training and the held-out split)."""
    first: dict[tuple, int] = {}
    repeats = []
    for example in examples:
        key = (json.dumps(example.messages, sort_keys=True), example.completion)
        if key in first:
            repeats.append((example.line, first[key]))
        else:
            first[key] = example.line
    if repeats:
        shown = ", ".join(f"line {line} repeats line {earlier}" for line, earlier in repeats[:3])
        more = f" and {len(repeats) - 3} more" if len(repeats) > 3 else ""
        logger.warning(
            "%s: %d of %d records repeat an earlier record word for word (%s%s); they are trained on as "
            "given. Remove the repeats unless they are meant to weigh those examples more.",
            path, len(repeats), len(examples), shown, more,
        )


def split_examples(examples: Sequence[Example], eval_fraction: float, seed: int) -> tuple[list, list]:
    """A seeded train / held-out split (at least one record on each side)."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_fraction)))
    held = sorted(order[:n_eval])
    train = sorted(order[n_eval:])
    return [examples[i] for i in train], [examples[i] for i in held]


def fit_to_length(
    prompt_ids: list[int], completion_ids: list[int], max_length: int, eos_id: int | None = None
) -> tuple[list[int], list[int], bool, bool]:
    """Cut a (prompt, completion) pair to ``max_length`` tokens: (prompt, completion + end token, cut?, cut?).

    The rule (the one :class:`~adapters.config.LoraTrainConfig` documents): a pair that fits is kept whole,
    with the end token ``eos_id`` after the completion. Otherwise the prompt is guaranteed
    ``min(len(prompt), max_length // 2)`` tokens and the completion gets the rest: a completion longer than
    that keeps its start and loses its end token (the answer does not end there, so the model must not learn
    to stop there). A prompt longer than the room left loses tokens from its middle: its first half keeps the
    chat header, system prompt and instruction, its second half the end of the request and the assistant
    header the completion follows.

    Returns:
        (prompt ids, completion ids, whether the prompt was cut, whether the completion was cut).
    """
    full = completion_ids + ([eos_id] if eos_id is not None else [])
    if len(prompt_ids) + len(full) <= max_length:
        return list(prompt_ids), full, False, False
    prompt_floor = min(len(prompt_ids), max_length // 2)
    room = max_length - prompt_floor
    completion_cut = len(full) > room
    completion = list(completion_ids[:room]) if completion_cut else full
    prompt_room = max_length - len(completion)
    prompt_cut = len(prompt_ids) > prompt_room
    prompt = list(prompt_ids)
    if prompt_cut:
        head = prompt_room // 2
        prompt = prompt[:head] + prompt[len(prompt) - (prompt_room - head) :]
    return prompt, completion, prompt_cut, completion_cut


def encode(
    tokenizer, example: Example, max_length: int, system: str | None = None
) -> tuple[list[int], list[int]]:
    """Token ids of the chat-formatted prompt and of the completion (+ end-of-turn token).

    A pair longer than ``max_length`` is cut as :func:`fit_to_length` says (see :func:`encode_examples` for
    the count of cut records).
    """
    prompt, completion, _, _ = _encode(tokenizer, example, max_length, system)
    return prompt, completion


def _encode(tokenizer, example: Example, max_length: int, system: str | None = None):
    prompt = tokenizer.apply_chat_template(
        as_messages(list(example.messages), system), tokenize=False, add_generation_prompt=True
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
    return fit_to_length(prompt_ids, completion_ids, max_length, tokenizer.eos_token_id)


@dataclass
class Truncation:
    """How many records :func:`encode_examples` had to cut, and how."""

    records: int = 0
    prompts: int = 0
    completions: int = 0
    lines: list[int] = field(default_factory=list)

    def describe(self, total: int, max_length: int) -> str:
        lines = ", ".join(str(n) for n in self.lines[:MAX_LISTED]) + (
            ", ..." if len(self.lines) > MAX_LISTED else ""
        )
        return (
            f"{self.records} of {total} record(s) are longer than max_length={max_length} tokens and were "
            f"truncated ({self.prompts} prompt(s) cut in the middle, {self.completions} completion(s) cut "
            f"at the end, without their end token; lines {lines}). Raise --max-length to keep them whole."
        )


def encode_examples(
    tokenizer, examples: Sequence[Example], max_length: int, system: str | None = None
) -> tuple[list[tuple[list[int], list[int]]], Truncation]:
    """:func:`encode` for many records, with the count of those that had to be cut."""
    encoded, cut = [], Truncation()
    for example in examples:
        prompt, completion, prompt_cut, completion_cut = _encode(tokenizer, example, max_length, system)
        encoded.append((prompt, completion))
        if prompt_cut or completion_cut:
            cut.records += 1
            cut.prompts += prompt_cut
            cut.completions += completion_cut
            cut.lines.append(example.line)
    return encoded, cut


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

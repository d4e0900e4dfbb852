"""``lm.perplexity``: perplexity of the model on held-out clinical notes (MTSamples), with a unigram baseline.

Notes are de-duplicated on their text (MTSamples lists the same note under several specialties) and
split by a hash of the text: bucket 0 of 10 is ``test``, the rest ``train``. Each note is scored on its
first ``MAX_TOKENS`` tokens. The ``unigram`` baseline is an add-one-smoothed unigram model over the
same tokenizer, fitted on the train split: any language model worth adapting must beat it by far.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import Counter

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_jsonl
from eval.metrics import perplexity
from eval.registry import SystemSpec, Task

TASK_NAME = "lm.perplexity"
CARD = "mtsamples"
MAX_TOKENS = 128
MAX_CHARS = 1000  # enough text for MAX_TOKENS tokens; keeps samples small
TEST_BUCKETS = 10


def _bucket(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16) % TEST_BUCKETS


@functools.lru_cache(maxsize=2)
def load_notes(split: str) -> tuple[dict, ...]:
    """De-duplicated MTSamples transcriptions of ``split`` (``test`` or ``train``), in note_id order."""
    if split not in ("test", "train"):
        raise DSuiteError(f"lm.perplexity has splits 'test' and 'train', got '{split}'.")
    path = dataset_dir("medical/mtsamples") / "mtsamples.jsonl"
    seen: set[str] = set()
    notes = []
    for record in read_jsonl(path):
        text = " ".join((record.get("transcription") or "").split())
        if len(text) < 40 or text in seen:
            continue
        seen.add(text)
        if (_bucket(text) == 0) == (split == "test"):
            notes.append({"id": str(record["note_id"]), "text": text[:MAX_CHARS]})
    return tuple(notes)


def _tokenizer(system: SystemSpec):
    from transformers import AutoTokenizer

    from core_model.base import resolve_base_path

    return _cached_tokenizer(str(resolve_base_path(system.base)), AutoTokenizer)


@functools.lru_cache(maxsize=2)
def _cached_tokenizer(folder: str, loader):
    return loader.from_pretrained(folder)


@functools.lru_cache(maxsize=2)
def _unigram(folder: str) -> tuple[Counter, int, int]:
    """Token counts of the train split's scored windows, their total, and the vocabulary size."""
    from tqdm.auto import tqdm
    from transformers import AutoTokenizer

    tok = _cached_tokenizer(folder, AutoTokenizer)
    counts: Counter = Counter()
    notes = load_notes("train")
    for start in tqdm(range(0, len(notes), 256), desc="fitting unigram baseline", unit="batch", leave=False):
        texts = [note["text"] for note in notes[start : start + 256]]
        for ids in tok(texts, add_special_tokens=False)["input_ids"]:
            counts.update(ids[:MAX_TOKENS])
    return counts, sum(counts.values()), len(tok)


def _unigram_nll(examples: list[dict], system: SystemSpec) -> list[dict]:
    from core_model.base import resolve_base_path

    folder = str(resolve_base_path(system.base))
    counts, total, vocab = _unigram(folder)
    tok = _tokenizer(system)
    outputs = []
    for example in examples:
        ids = tok(example["text"], add_special_tokens=False)["input_ids"][:MAX_TOKENS]
        scored = ids[1:]  # the model scores every token after the first; score the same ones
        nll = -sum(math.log((counts[i] + 1) / (total + vocab)) for i in scored)
        outputs.append({"nll": nll, "tokens": len(scored)})
    return outputs


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    """Per note, the summed NLL (nats) of its scored tokens and how many tokens were scored."""
    if system.baseline == "unigram":
        return _unigram_nll(examples, system)
    from eval.model_io import token_nll

    scored = token_nll(system, [e["text"] for e in examples], max_tokens=MAX_TOKENS)
    return [{"nll": nll, "tokens": n} for nll, n in scored]


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    """Corpus perplexity (token-weighted) and mean NLL per token."""
    nll = [o["nll"] for o in outputs]
    tokens = [o["tokens"] for o in outputs]
    ppl = perplexity(nll, tokens)
    return {"perplexity": ppl, "nll_per_token": math.log(ppl), "tokens": float(sum(tokens))}


def build_task() -> Task:
    """The ``lm.perplexity`` task."""
    return Task(
        name=TASK_NAME,
        dataset=CARD,
        description="Perplexity on held-out MTSamples clinical notes (first 128 tokens); unigram baseline.",
        load=lambda split: list(load_notes(split)),
        predict=predict,
        score=score,
        primary_metric="perplexity",
        baselines=("unigram",),
        splits=("test", "train"),
        batch_size=4,
        tags=("lm", "medical"),
    )

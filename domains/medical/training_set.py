"""The medical adapter's training set: yes/no verification of an ICD-10-CM code against a note sentence.

Built from CodiEsp train: for each gold diagnosis code, the sentence sharing most words with the code's
description is a "yes" example; the same sentence with a frequent code the note does not carry is a "no"
example. The adapter then scores candidates as P(yes) (``AdapterManager.score_options``); see the README
for how it compared with the logistic ranker.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from core_model.errors import DSuiteError
from domains.medical.icd_codes import describe

PROMPT = (
    "Clinical note sentence: {sentence}\nCandidate ICD-10-CM code: {code} ({description})\n"
    "Does the sentence support this code for the patient? Answer yes or no."
)
_WORD = re.compile(r"[a-z]{3,}")


def _overlap(sentence: str, description: str) -> int:
    return len(set(_WORD.findall(sentence.lower())) & set(_WORD.findall(description.lower())))


def build_training_set(out_path: str | Path, limit: int | None = None, seed: int = 0) -> Path:
    """Write chat JSONL records (``{"messages": [...]}``) to ``out_path``.

    Args:
        out_path: the JSONL file to write.
        limit: at most this many records (None: all).
        seed: sampling seed of the "no" codes.

    Returns:
        ``out_path``.
    """
    from collections import Counter

    from eval.data import codiesp

    notes = codiesp.load("train")
    frequent = [c for c, _ in Counter(c for n in notes for c in n["codes"]).most_common(300) if describe(c)]
    rng = random.Random(seed)
    records = []
    for note in notes:
        sentences = [s for s in note["text"].split("\n") if len(s.strip()) > 10]
        if not sentences:
            continue
        for code in note["codes"]:
            description = describe(code)
            if not description:
                continue
            sentence = max(sentences, key=lambda s: _overlap(s, description))
            if _overlap(sentence, description) == 0:
                continue
            negative = rng.choice([c for c in frequent if c not in note["codes"]])
            for candidate, answer in ((code, "yes"), (negative, "no")):
                prompt = PROMPT.format(
                    sentence=sentence.strip(), code=candidate, description=describe(candidate)
                )
                records.append(
                    {
                        "messages": [
                            {"role": "user", "content": prompt},
                            {"role": "assistant", "content": answer},
                        ]
                    }
                )
    rng.shuffle(records)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise DSuiteError("No training records could be built from CodiEsp train; check the shared data.")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return out_path

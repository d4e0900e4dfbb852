"""Build the small classification tasks the adapters package trains on (continual learning, benchmarks).

Reads the shared data sets in place (``DSUITE_DATASETS``) and writes ``<task>.train.jsonl`` and
``<task>.test.jsonl`` (rows ``{"text", "label"}``) plus ``tasks.json`` (instruction and label set per task)
next to this file. Deterministic (seeded). Run: ``.venv/bin/python data/adapters_demo/build.py``.
"""

from __future__ import annotations

import csv
import json
import logging
import random
from collections import defaultdict
from pathlib import Path

from eval.data.paths import dataset_dir, read_json, read_jsonl

HERE = Path(__file__).resolve().parent
SEED = 13
logger = logging.getLogger("adapters_demo")


def _stratified(rows: list[dict], per_label: dict[str, int], rng: random.Random) -> list[dict]:
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    out = []
    for label, count in per_label.items():
        pool = by_label[label]
        rng.shuffle(pool)
        out.extend(pool[:count])
    rng.shuffle(out)
    return out


def fpb(rng: random.Random) -> tuple[list, list]:
    rows = [
        {"text": r["sentence"], "label": r["label"]}
        for r in read_jsonl(dataset_dir("finance/financial_phrasebank") / "fpb_sentences.jsonl")
        if int(r["agreement"]) >= 75
    ]
    rng.shuffle(rows)
    test = _stratified(rows[:900], {"negative": 50, "neutral": 50, "positive": 50}, rng)
    test_ids = {id(r) for r in test}
    train = _stratified(
        [r for r in rows if id(r) not in test_ids], {"negative": 150, "neutral": 200, "positive": 150}, rng
    )
    return train, test


def banking(rng: random.Random) -> tuple[list, list]:
    intents = [
        "card_arrival",
        "change_pin",
        "exchange_rate",
        "lost_or_stolen_card",
        "top_up_failed",
        "request_refund",
    ]
    folder = dataset_dir("dialog/banking77")

    def read(name: str) -> list[dict]:
        with (folder / name).open(encoding="utf-8", newline="") as handle:
            return [
                {"text": r["text"], "label": r["category"].replace("_", " ")}
                for r in csv.DictReader(handle)
                if r["category"] in intents
            ]

    labels = [i.replace("_", " ") for i in intents]
    return (
        _stratified(read("train.csv"), dict.fromkeys(labels, 40), rng),
        _stratified(read("test.csv"), dict.fromkeys(labels, 20), rng),
    )


def negex(rng: random.Random) -> tuple[list, list]:
    rows = [
        {"text": f"Condition: {r['concept']}. Sentence: {r['sentence']}", "label": r["negation"].lower()}
        for r in read_jsonl(
            dataset_dir("medical/negex_context_annotations") / "negex_context_annotations.jsonl"
        )
        if len(r["concept"]) <= 60 and r["concept"].lower() in r["sentence"].lower()
    ]
    rng.shuffle(rows)
    test = _stratified(rows, {"affirmed": 50, "negated": 50}, rng)
    test_ids = {id(r) for r in test}
    train = _stratified([r for r in rows if id(r) not in test_ids], {"affirmed": 120, "negated": 120}, rng)
    return train, test


def clinc_auto(rng: random.Random) -> tuple[list, list]:
    intents = ["traffic", "gas", "tire_pressure", "oil_change_when", "jump_start", "uber"]
    data = read_json(dataset_dir("dialog/clinc150_oos") / "data_full.json")

    def rows(split: str) -> list[dict]:
        return [{"text": t, "label": i.replace("_", " ")} for t, i in data[split] if i in intents]

    labels = [i.replace("_", " ") for i in intents]
    return (
        _stratified(rows("train"), dict.fromkeys(labels, 40), rng),
        _stratified(rows("test"), dict.fromkeys(labels, 20), rng),
    )


TASKS = {
    "fpb_sentiment": (
        fpb,
        "Classify the sentiment of this financial news sentence for investors as positive, "
        "negative or neutral.\nSentence: {text}",
        "finance/financial_phrasebank",
    ),
    "banking_intents": (
        banking,
        "Which banking request is this: card arrival, change pin, exchange rate, lost or "
        "stolen card, top up failed or request refund?\nMessage: {text}",
        "dialog/banking77",
    ),
    "negex_negation": (
        negex,
        "Is the condition affirmed or negated in this clinical sentence?\n{text}",
        "medical/negex_context_annotations",
    ),
    "clinc_auto": (
        clinc_auto,
        "Which car and commute request is this: traffic, gas, tire pressure, oil change "
        "when, jump start or uber?\nRequest: {text}",
        "dialog/clinc150_oos",
    ),
}


def main() -> None:
    """Write every task's train/test files and tasks.json."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = {}
    for name, (build, instruction, source) in TASKS.items():
        train, test = build(random.Random(f"{SEED}-{name}"))
        for split, rows in (("train", train), ("test", test)):
            with (HERE / f"{name}.{split}.jsonl").open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        labels = sorted({r["label"] for r in train})
        spec[name] = {
            "instruction": instruction,
            "labels": labels,
            "source": source,
            "train": f"{name}.train.jsonl",
            "test": f"{name}.test.jsonl",
            "sizes": {"train": len(train), "test": len(test)},
        }
        logger.info("%s: %d train, %d test, labels %s", name, len(train), len(test), labels)
    clinc = read_json(dataset_dir("dialog/clinc150_oos") / "data_full.json")
    rng = random.Random(f"{SEED}-ood")
    for split, source, count in (("calibration", "oos_val", 100), ("test", "oos_test", 200)):
        texts = [t for t, _ in clinc[source]]
        rng.shuffle(texts)
        with (HERE / f"ood.{split}.jsonl").open("w", encoding="utf-8") as handle:
            for text in texts[:count]:
                handle.write(json.dumps({"text": text, "label": "out_of_scope"}) + "\n")
    (HERE / "tasks.json").write_text(json.dumps(spec, indent=1) + "\n")


if __name__ == "__main__":
    main()

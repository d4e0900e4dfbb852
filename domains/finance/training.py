"""The finance adapter: its training set (Financial PhraseBank sentiment, train split, plus glossary
definitions), its LoRA settings, and ``train_finance_adapter``, which trains it and ships a copy in
``data/finance/adapter/`` (installed into a user's registry on first request, ``adapters.shipped``).

Records are chat JSONL (``{"messages": [...]}``) for ``adapters.train_adapter``. The sentiment part is
balanced across labels and drawn only from the ``train`` split (``eval.data.phrasebank.fpb_split``), so
``finance.sentiment`` on ``test`` never sees a training sentence.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

from core_model.errors import DSuiteError
from core_model.paths import PROJECT_DATA, dsuite_home
from domains.finance.resources import dumps
from domains.finance.sentiment import LABELS, SYSTEM_PROMPT, sentiment_prompt

logger = logging.getLogger(__name__)

ADAPTER_NAME = "finance"
SHIPPED_ADAPTER = PROJECT_DATA / "finance" / "adapter"
RETRAIN = "`dsuite finance train-adapter --base PATH`"  # shown when the shipped copy does not fit the base
DEFAULT_PER_LABEL = 160
DEFAULT_DEFINITIONS = 48
DEFINE_PROMPT = "In one sentence, what is {term} in finance?"


def sentiment_records(per_label: int = DEFAULT_PER_LABEL, seed: int = 0) -> list[dict]:
    """Balanced FPB training records (``per_label`` sentences per label, fewer if the split has fewer)."""
    from eval.data.phrasebank import fpb_split

    rng = random.Random(seed)
    rows = fpb_split("train", min_agreement="75")
    records = []
    for label in LABELS:
        pool = [r for r in rows if r["label"] == label]
        rng.shuffle(pool)
        for row in pool[:per_label]:
            records.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": sentiment_prompt(row["sentence"])},
                        {"role": "assistant", "content": label},
                    ]
                }
            )
    return records


def definition_records(limit: int = DEFAULT_DEFINITIONS, seed: int = 0) -> list[dict]:
    """Definition questions answered from the project's glossary."""
    from domains.finance.dictionary import load_glossary

    terms = load_glossary()
    random.Random(seed).shuffle(terms)
    return [
        {
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": DEFINE_PROMPT.format(term=t.term)},
                {"role": "assistant", "content": t.definition},
            ]
        }
        for t in terms[:limit]
    ]


def build_training_set(out_path: str | Path, limit: int | None = None, seed: int = 0) -> Path:
    """Write the finance adapter's training JSONL.

    Args:
        out_path: the file to write.
        limit: cap the number of records (after shuffling); None keeps all.
        seed: shuffling seed.

    Returns:
        The written path.
    """
    if limit is not None and limit < 2:
        raise DSuiteError(f"limit must be at least 2 records, got {limit}.")
    records = sentiment_records(seed=seed) + definition_records(seed=seed)
    random.Random(seed).shuffle(records)
    if limit:
        records = records[:limit]
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
    logger.info("finance training set: %d records -> %s", len(records), out)
    return out


def adapter_config():
    """The finance adapter's LoRA settings: r=16 on q/v of every layer, two epochs at lr 1e-3.

    The first version trained only the top 10 layers for one epoch on 264 records (half the step cost) and
    stayed below the majority class on ``finance.sentiment`` (accuracy 0.347, base 0.185); the continual
    demo's FPB adapter (all layers, 450 records) reached 0.75, hence these settings.
    """
    from adapters import LoraTrainConfig

    return LoraTrainConfig(
        r=16,
        alpha=32,
        dropout=0.05,
        target_modules=("q_proj", "v_proj"),
        lr=1e-3,
        epochs=2.0,
        batch_size=8,
        max_length=128,
        eval_fraction=0.05,
        max_eval=16,
        checkpoint_every=10,
        warmup_steps=5,
    )


def data_card(records: int) -> str:
    """The adapter's data card (``records``: the size of its training set)."""
    return (
        "# Training data of adapter `finance`\n\n"
        f"- source: `dsuite finance train-set`: {records} records, Financial PhraseBank sentences of the "
        f"`train` split (agreement >= 75%, up to {DEFAULT_PER_LABEL} per label) with their one-word label, "
        f"and {DEFAULT_DEFINITIONS} definition questions answered from the project's glossary\n"
        "- license: CC BY-NC-SA 3.0 (Financial PhraseBank: non-commercial, share-alike); glossary "
        "Apache-2.0\n"
        "- known limits: see data_cards/finance_adapter.md\n"
    )


def train_finance_adapter(
    base: str | None = None, device: str | None = None, work_dir: Path | None = None
) -> dict:
    """Train the finance adapter (``adapter_config``) on ``build_training_set``, register it, ship a copy.

    Args:
        base: the base checkpoint (default: the embedded one).
        device: where to train (default: a GPU when PyTorch sees one, else the CPU).
        work_dir: where the training set is written (default ``$DSUITE_HOME/finance``).

    Returns:
        ``{"adapter": "name@version", "shipped": folder, "training": ...}``.
    """
    from adapters.shipped import train_and_ship

    data = build_training_set(Path(work_dir or dsuite_home() / "finance") / "finance_train.jsonl")
    return train_and_ship(
        ADAPTER_NAME,
        data,
        SHIPPED_ADAPTER,
        retrain=RETRAIN,
        config=adapter_config(),
        card=data_card,
        base=base,
        device=device,
    )

"""Train the customer-service adapter (dialog state tracking) and ship it as a small repository artifact.

The adapter learns two tasks from the MultiWOZ dev dialogues not kept for validation, in one training set:
writing the slots a user turn sets (the generator, :mod:`~domains.customer_service.dst_adapter`, used
where no rules exist, e.g. SGD) and deciding the rule tracker's candidates yes or no (the verifier,
:mod:`~domains.customer_service.dst_verifier`, the MultiWOZ tracker). ``train_dst_adapter`` writes that set,
trains a LoRA with ``adapters.train_adapter`` on the base (on a GPU when one is there), and copies the
registered peft files to
``data/customer_service/adapter/`` (a few MB) with its data card and training record. On a fresh machine
the adapter manager installs that shipped copy into the user's registry on first request
(``adapters.shipped``), so the tracker works before anyone trains.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core_model.paths import dsuite_home
from domains.customer_service.dst_adapter import ADAPTER_NAME, generator_records, training_dialogues
from eval.data.paths import PROJECT_DATA

logger = logging.getLogger(__name__)

SHIPPED_ADAPTER = PROJECT_DATA / "customer_service" / "adapter"
RETRAIN = "`dsuite cs train-dst --base PATH`"  # shown when the shipped copy does not fit the loaded base


# The shipped adapter's settings: LoRA on q_proj/v_proj of every layer; every generator turn and every
# verifier candidate of the training dialogues (limit None). Too slow for 2 CPU cores (about 45 tokens/s
# there); it was trained on a GPU (see data_cards/customer_service.md). The first adapter, generator only
# on 640 turns for one epoch on the CPU, scored 0.2625 JGA on 400 validation turns.
RECIPE = {
    "limit": None,
    "epochs": 2.0,
    "lr": 5e-4,
    "batch_size": 16,
    "target_modules": ("q_proj", "v_proj"),
    "layers": None,
}


def build_multitask_set(out_path: str | Path, limit: int | None = RECIPE["limit"], seed: int = 0) -> Path:
    """Write the adapter's training set: generator records
    (:func:`~domains.customer_service.dst_adapter.generator_records`) and verifier records
    (:func:`~domains.customer_service.dst_verifier.verifier_records`) of the training dialogues, shuffled
    together. ``limit`` caps each of the two parts (None: all)."""
    import random

    from adapters.data import write_jsonl
    from domains.customer_service.dst_verifier import verifier_records
    from eval.data import multiwoz

    dialogues = training_dialogues()
    generator = generator_records(dialogues, limit, seed)
    verifier = verifier_records(dialogues, multiwoz.user_turns)
    rng = random.Random(seed)
    if limit is not None and limit < len(verifier):
        verifier = rng.sample(verifier, limit)
    records = generator + verifier
    rng.shuffle(records)
    logger.info("DST training set: %d generator + %d verifier records", len(generator), len(verifier))
    return Path(write_jsonl(out_path, records))


def data_card(records: int) -> str:
    """The adapter's data card (``records``: the size of its training set)."""
    return (
        "# Training data of adapter `customer_service`\n\n"
        "- source: MultiWOZ 2.1 (ConvLab-2) **dev** split, the dialogues not kept for validation (every 8th "
        f"by id); {records} records; the train split is not in the shared copy\n"
        "- records of two kinds, shuffled together: (1) prompt (domain in focus and its slots, rule-tracker "
        "hint, last system turn, user turn) -> the JSON object of slots the turn sets or changes, one per "
        "user turn; (2) prompt (last system turn, user turn, domain in focus, one candidate slot value the "
        "rules read in the user turn or the assistant mentioned) -> yes/no: does the gold state after the "
        "turn hold it (every candidate)\n"
        "- license: MultiWOZ MIT / ConvLab-2 copy CC BY 4.0\n"
        "- known limits: see data_cards/customer_service.md\n"
    )


def train_dst_adapter(
    limit: int | None = RECIPE["limit"],
    epochs: float = RECIPE["epochs"],
    base: str | None = None,
    work_dir: Path | None = None,
    data: str | Path | None = None,
    device: str | None = None,
) -> dict:
    """Train the adapter on the recipe's training set, register it, ship a copy.

    Args:
        limit: cap on each part of the training set (None: all).
        epochs: passes over it.
        base: the base checkpoint (default: the embedded one).
        work_dir: where the training set is written.
        data: a training set written earlier by :func:`build_multitask_set` (e.g. on a machine that has the
            MultiWOZ copy), used as it is instead of writing one.
        device: where to train (default: a GPU when PyTorch sees one, else the CPU).

    Returns:
        ``{"adapter": "name@version", "shipped": folder, "training": ...}``.
    """
    from adapters import LoraTrainConfig
    from adapters.shipped import train_and_ship

    work_dir = Path(work_dir or dsuite_home() / "customer_service")
    work_dir.mkdir(parents=True, exist_ok=True)
    data = Path(data) if data is not None else build_multitask_set(work_dir / "dst_train.jsonl", limit=limit)
    config = LoraTrainConfig(
        epochs=epochs,
        batch_size=RECIPE["batch_size"],
        lr=RECIPE["lr"],
        max_length=256,
        target_modules=RECIPE["target_modules"],
        layers=RECIPE["layers"],
        eval_fraction=0.05,
        max_eval=40,
        checkpoint_every=0,
    )
    return train_and_ship(
        ADAPTER_NAME,
        data,
        SHIPPED_ADAPTER,
        retrain=RETRAIN,
        config=config,
        card=data_card,
        base=base,
        device=device,
        epochs=epochs,
    )

"""MultiWOZ 2.1 (ConvLab-2 copy) dev/test dialogues and the MultiWOZ 2.2 schema, read in place."""

from __future__ import annotations

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_json, read_jsonl

CARD = "multiwoz"
SPLITS = ("test", "dev")
FOLDER = "dialog/multiwoz"


def load_dialogues(split: str = "test", limit: int | None = None) -> list[dict]:
    """Dialogues ``{"dialogue_id", "domains", "turns": [{"speaker", "utterance", "state"?}]}`` of a split.

    Args:
        split: ``test`` or ``dev`` (the train split is not available in the shared copy).
        limit: keep only the first ``limit`` dialogues (file order).
    """
    if split not in SPLITS:
        raise DSuiteError(
            f"MultiWOZ split '{split}' is unknown; expected one of {', '.join(SPLITS)} "
            "(the train split is not in the shared copy)."
        )
    dialogues = []
    for record in read_jsonl(dataset_dir(FOLDER) / f"{split}.jsonl"):
        dialogues.append(record)
        if limit is not None and len(dialogues) >= limit:
            break
    return dialogues


def schema() -> list[dict]:
    """The MultiWOZ 2.2 schema: a list of services with slots and intents."""
    return list(read_json(dataset_dir(FOLDER) / "schema_multiwoz22.json"))


def user_turns(dialogue: dict) -> list[dict]:
    """One record per user turn: the previous system utterance, the user utterance and the gold state."""
    out, system = [], ""
    for turn in dialogue["turns"]:
        if turn["speaker"] == "SYSTEM":
            system = turn["utterance"]
            continue
        out.append({"system": system, "user": turn["utterance"], "state": dict(turn.get("state") or {})})
    return out

"""Schema-Guided Dialogue test subset (Payment_1, RentalCars_3): zero-shot state tracking."""

from __future__ import annotations

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_json

CARD = "sgd_subset"
SERVICES = ("Payment_1", "RentalCars_3")
FOLDER = "dialog/sgd_subset"


def load_dialogues(service: str | None = None, limit: int | None = None) -> list[dict]:
    """Dialogues of one service (or both) converted to the MultiWOZ-like turn shape.

    Each user turn has ``state``: ``{"<service>-<slot>": [acceptable values]}`` (SGD lists several
    surface forms per slot).
    """
    services = SERVICES if service is None else (service,)
    for name in services:
        if name not in SERVICES:
            raise DSuiteError(
                f"SGD service '{name}' is not in the subset; expected one of {', '.join(SERVICES)}."
            )
    out = []
    for name in services:
        for dialogue in read_json(dataset_dir(FOLDER) / f"test_{name}.json"):
            turns = []
            for turn in dialogue["turns"]:
                record = {"speaker": turn["speaker"], "utterance": turn["utterance"]}
                if turn["speaker"] == "USER":
                    state = {}
                    for frame in turn.get("frames", []):
                        for slot, values in frame.get("state", {}).get("slot_values", {}).items():
                            state[f"{frame['service']}-{slot}"] = list(values)
                    record["state"] = state
                turns.append(record)
            out.append(
                {"dialogue_id": dialogue["dialogue_id"], "domains": dialogue["services"], "turns": turns}
            )
            if limit is not None and len(out) >= limit * len(services):
                break
    return out


def schema() -> list[dict]:
    """The two SGD services' schema entries (slots, intents)."""
    return list(read_json(dataset_dir(FOLDER) / "schema.json"))

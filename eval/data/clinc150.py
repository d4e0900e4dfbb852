"""CLINC150 / OOS-eval (full): 150 in-scope intents plus out-of-scope queries labelled ``oos``."""

from __future__ import annotations

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir, read_json

CARD = "clinc150_oos"
SPLITS = ("test", "validation", "train")
OOS = "oos"
FOLDER = "dialog/clinc150_oos"
_KEYS = {"train": "train", "validation": "val", "test": "test"}


def load(split: str = "test", include_oos: bool = True) -> list[dict]:
    """Examples ``{"id", "text", "label"}``; out-of-scope queries carry the label ``"oos"``.

    Args:
        split: ``train`` (15,000 + 100 OOS), ``validation`` (3,000 + 100) or ``test`` (4,500 + 1,000).
        include_oos: also return the split's out-of-scope queries.
    """
    if split not in _KEYS:
        raise DSuiteError(f"CLINC150 split '{split}' is unknown; expected one of {', '.join(SPLITS)}.")
    data = read_json(dataset_dir(FOLDER) / "data_full.json")
    key = _KEYS[split]
    rows = []
    for prefix in [key, f"oos_{key}"] if include_oos else [key]:
        for number, pair in enumerate(data.get(prefix, [])):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise DSuiteError(f"data_full.json[{prefix}][{number}] is {pair!r}; expected [text, intent].")
            rows.append({"id": f"clinc150-{prefix}-{number}", "text": pair[0], "label": pair[1]})
    return rows


def domains() -> dict[str, list[str]]:
    """CLINC150's 10 domains and their 15 intents each."""
    return dict(read_json(dataset_dir(FOLDER) / "domains.json"))

"""Plainly worded requests borrowed from CLINC150 and BANKING77 for the Bitext intents they share.

Bitext's support requests come from a few templates and nearly always name an order number, so a model
trained on them alone is unsure of plain requests ("where is my order"). ``borrowed_intents.json`` (rules
as data) maps a few source intents to Bitext intents; ``load(split)`` returns the mapped rows of that split
of each source, labelled with the Bitext intent: train and validation rows join the bitext intent set's, and
the sources' test rows are scored apart as ``plain_test``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from core_model.errors import DSuiteError

MAP_FILE = Path(__file__).resolve().parents[2] / "data" / "customer_service" / "borrowed_intents.json"
SPLITS = ("train", "validation", "test")


def _corpus_loader(corpus: str):
    if corpus == "clinc150":
        from eval.data import clinc150

        return lambda split: clinc150.load(split, include_oos=False)
    if corpus == "banking77":
        from eval.data import banking77

        return banking77.load
    raise DSuiteError(f"{MAP_FILE.name}: unknown corpus '{corpus}'; expected clinc150 or banking77.")


@lru_cache(maxsize=1)
def mapping(path: Path = MAP_FILE) -> dict[tuple[str, str], str]:
    """``{(corpus, source intent): bitext intent}`` from the map file.

    Raises:
        DSuiteError: the file is missing, or an entry lacks a field or maps one source intent twice.
    """
    if not path.is_file():
        raise DSuiteError(f"The borrowed-intents map '{path}' is missing; restore it from the repository.")
    out: dict[tuple[str, str], str] = {}
    for number, entry in enumerate(json.loads(path.read_text(encoding="utf-8"))["sources"]):
        missing = [k for k in ("corpus", "intent", "bitext_intent") if not entry.get(k)]
        if missing:
            raise DSuiteError(f"{path.name}: source {number} lacks {', '.join(missing)}.")
        key = (entry["corpus"], entry["intent"])
        if key in out:
            raise DSuiteError(f"{path.name}: {key[0]} intent '{key[1]}' is mapped twice; keep one entry.")
        out[key] = entry["bitext_intent"]
    return out


def load(split: str) -> list[dict]:
    """The borrowed rows of ``split`` (``{"id", "text", "label", "source"}``, label a Bitext intent).

    Raises:
        DSuiteError: an unknown split, or a mapped source intent that its corpus does not have.
    """
    if split not in SPLITS:
        raise DSuiteError(f"Borrowed-intent split '{split}' is unknown; expected one of {', '.join(SPLITS)}.")
    wanted: dict[str, dict[str, str]] = {}
    for (corpus, intent), target in mapping().items():
        wanted.setdefault(corpus, {})[intent] = target
    rows = []
    for corpus, intents in wanted.items():
        source = _corpus_loader(corpus)(split)
        absent = set(intents) - {r["label"] for r in source}
        if absent:
            raise DSuiteError(
                f"{MAP_FILE.name}: {corpus} {split} has no intent {', '.join(sorted(absent))}; "
                "correct the intent name in the map."
            )
        rows += [
            {
                "id": r["id"],
                "text": r["text"],
                "label": intents[r["label"]],
                "source": f"{corpus}:{r['label']}",
            }
            for r in source
            if r["label"] in intents
        ]
    return rows

"""FAQ retrieval over a business's question/answer pairs (faiss inner product over MiniLM embeddings).

The test business is the Bitext support set: its train-split requests are the indexed questions and their
reference answers the answers. The index stores only row ids and fp16 embeddings
(``data/customer_service/faq/<business>/``); questions and answers are read from the shared data in place.
Placeholders (``{{Order Number}}``) are filled from the dialog state and the business profile.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core_model.errors import DSuiteError
from eval.data.paths import PROJECT_DATA, read_json

logger = logging.getLogger(__name__)

FAQ_DIR = PROJECT_DATA / "customer_service" / "faq"
BUSINESS_FILE = PROJECT_DATA / "customer_service" / "business.json"
_PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
_TOKEN_CHAR = re.compile(r"[\w#$€£]")  # characters of an entity token (an order number, an amount)
# an order or bill number in an answer (Bitext sometimes wraps it as a placeholder: {{370795561790}})
_ID_NUMBER = re.compile(r"(?:\{\{\s*)?(?<!\d)#?\d{5,}(?!\d)(?:\s*\}\})?")


@dataclass(frozen=True)
class FaqHit:
    """One retrieved question/answer pair and its cosine similarity to the query."""

    id: str
    question: str
    answer: str
    intent: str
    score: float


@lru_cache(maxsize=1)
def business_profile() -> dict:
    """The business facts that fill answer placeholders."""
    return read_json(BUSINESS_FILE)


def fill_placeholders(answer: str, state: dict | None = None) -> str:
    """Replace ``{{Name}}`` placeholders from the dialog state first, then the business profile."""
    profile = business_profile()
    state = state or {}

    def replace(match: re.Match) -> str:
        name = match.group(1)
        slot = profile["slot_placeholders"].get(name)
        if slot and state.get(slot):
            return str(state[slot])
        if name in profile["placeholders"]:
            return profile["placeholders"][name]
        if slot:  # not given yet: a blank the customer recognises
            fallbacks = profile["slot_fallbacks"]
            return fallbacks.get(slot, fallbacks["default"])
        return profile["unknown_placeholder"].format(name=name)  # a page label: its own name

    return _PLACEHOLDER.sub(replace, answer)


def _request_token(request: str, value: str) -> str | None:
    """The whole token of ``request`` that holds ``value`` (Bitext's value can be cut short: ``3707955617``
    of ``370795561790``), or None when the request does not hold it."""
    at = request.lower().find(value.lower())
    if at < 0:
        return None
    start, end = at, at + len(value)
    while start > 0 and _TOKEN_CHAR.match(request[start - 1]):
        start -= 1
    while end < len(request) and (
        _TOKEN_CHAR.match(request[end]) or (request[end] in ".," and request[end + 1 : end + 2].isdigit())
    ):
        end += 1
    return request[start:end]


def entity_as_placeholder(row: dict) -> str:
    """The answer of a Bitext ``row`` with its own request's entity (``entity_type``/``entity_value``) turned
    into the placeholder of its type (``entity_placeholders`` in the business profile), so the answer is
    filled from the customer's state, not from the request it was written for."""
    answer, kind, value = row["response"], row.get("entity_type"), row.get("entity_value")
    name = business_profile()["entity_placeholders"].get(kind or "")
    token = _request_token(row["text"], value) if name and value else None
    if not token:
        return answer
    if len(re.findall(r"\d", token)) >= 5:  # an id: the answer may echo it longer or garbled, so every id
        pattern = _ID_NUMBER
    else:
        pattern = re.compile(rf"(?:\{{\{{\s*)?(?<!\w){re.escape(token)}(?!\w)(?:\s*\}}\}})?", re.I)
    return pattern.sub(lambda _: f"{{{{{name}}}}}", answer)


class FaqIndex:
    """A faiss index of a business's questions with their answers."""

    def __init__(self, rows: list[dict], embeddings, name: str = "bitext"):
        import faiss
        import numpy as np

        if len(rows) != len(embeddings):
            raise DSuiteError(f"FAQ index '{name}': {len(rows)} rows but {len(embeddings)} embeddings.")
        self.name, self.rows = name, rows
        self.answers = [entity_as_placeholder(r) for r in rows]  # what a hit answers, before filling
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.index = faiss.IndexFlatIP(vectors.shape[1])
        self.index.add(vectors)

    @classmethod
    def build(cls, rows: list[dict], name: str = "bitext", progress: bool = True) -> FaqIndex:
        """Embed the questions of ``rows`` (``{"id", "text", "response", "label"}``) and index them."""
        from domains.customer_service.encoder import embed

        return cls(rows, embed([r["text"] for r in rows], progress=progress), name)

    def save(self, folder: Path | None = None) -> Path:
        """Write ``ids.json`` and ``embeddings.npy`` (fp16) to ``folder``."""
        import numpy as np

        folder = Path(folder or FAQ_DIR / self.name)
        folder.mkdir(parents=True, exist_ok=True)
        vectors = self.index.reconstruct_n(0, self.index.ntotal).astype(np.float16)
        np.save(folder / "embeddings.npy", vectors)
        (folder / "ids.json").write_text(json.dumps([r["id"] for r in self.rows]) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, name: str = "bitext") -> FaqIndex:
        """The saved index of business ``name`` (only ``bitext`` ships), with its Q/A rows read in place.

        Read once per process and shared by every conversation (search only reads it) while its files stay
        as they are: a rebuilt index, or another data sets folder, is read again.
        """
        folder = FAQ_DIR / name
        if not (folder / "ids.json").is_file():
            raise DSuiteError(f"No FAQ index at '{folder}'. Build it with `dsuite cs build-faq`.")
        if name != "bitext":
            raise DSuiteError(f"FAQ business '{name}' is unknown; the shipped business is 'bitext'.")
        from eval.data.paths import datasets_root

        stamp = tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(folder.iterdir()))
        return cls._read(name, stamp, str(datasets_root()))

    @classmethod
    @lru_cache(maxsize=4)
    def _read(cls, name: str, stamp: tuple, datasets: str) -> FaqIndex:
        import numpy as np

        from eval.data import bitext

        folder = FAQ_DIR / name

        by_id = {r["id"]: r for r in bitext.load("all")}
        ids = json.loads((folder / "ids.json").read_text(encoding="utf-8"))
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DSuiteError(
                f"FAQ index '{name}' names rows absent from the Bitext file ({missing[:3]}); rebuild it."
            )
        return cls([by_id[i] for i in ids], np.load(folder / "embeddings.npy").astype(np.float32), name)

    def search(self, query_vectors, k: int = 3) -> list[list[FaqHit]]:
        """Top-``k`` hits per query vector (unit vectors, (N, H))."""
        import numpy as np

        scores, idx = self.index.search(np.ascontiguousarray(query_vectors, dtype=np.float32), k)
        out = []
        for row_scores, row_idx in zip(scores, idx, strict=True):
            hits = []
            for score, i in zip(row_scores, row_idx, strict=True):
                if i < 0:
                    continue
                r = self.rows[i]
                hits.append(FaqHit(r["id"], r["text"], self.answers[i], r["label"], float(score)))
            out.append(hits)
        return out

    def query(self, text: str, k: int = 3) -> list[FaqHit]:
        """Top-``k`` hits for one question."""
        from domains.customer_service.encoder import embed

        return self.search(embed([text]), k)[0]

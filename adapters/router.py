"""Route a request to an adapter: nearest exemplars in a faiss index of sentence embeddings.

Each adapter contributes exemplars (requests from its training data). A query's ``k`` nearest exemplars
(cosine similarity) vote: an adapter's score is the mean similarity of its exemplars among them, weighted by
how many of the ``k`` they are. Below a threshold calibrated on held-out queries the router abstains
(returns ``None``: answer with the bare base). Adding an adapter appends its exemplars to the index; the
others are not embedded again. The index is saved as faiss's own binary format plus JSON (no pickle).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)
INDEX_FILE = "router.faiss"
META_FILE = "router.json"


@dataclass(frozen=True)
class RouteResult:
    """Where a request goes: an adapter name (``None`` = abstain to the base), confidence, runners-up."""

    adapter: str | None
    confidence: float
    runners_up: list[tuple[str, float]] = field(default_factory=list)
    best: str | None = None  # the top adapter even when abstaining


class Router:
    """A k-nearest-exemplar router over adapters, with a calibrated abstention threshold."""

    def __init__(self, threshold: float = 0.0, k: int = 10, embed_fn: Callable | None = None) -> None:
        """Create an empty router.

        Args:
            threshold: confidence below which :meth:`route` abstains (see :meth:`calibrate`).
            k: neighbours that vote.
            embed_fn: texts -> unit float32 vectors (default: all-MiniLM-L6-v2).
        """
        import faiss

        if k < 1:
            raise DSuiteError(f"k must be >= 1, got {k}.")
        self.threshold = threshold
        self.k = k
        self._embed_fn = embed_fn
        self.index = None
        self.labels: list[str] = []
        self._faiss = faiss

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` with this router's encoder."""
        if self._embed_fn is not None:
            return np.ascontiguousarray(self._embed_fn(list(texts)), dtype=np.float32)
        from adapters.embedder import embed

        return embed(texts)

    @property
    def adapters(self) -> list[str]:
        """The adapters the router knows, in the order they were added."""
        return list(dict.fromkeys(self.labels))

    def add(self, adapter: str, texts: Sequence[str], embeddings: np.ndarray | None = None) -> int:
        """Append exemplars of ``adapter`` (only these texts are embedded); returns the index size."""
        if not texts:
            raise DSuiteError(f"No exemplars given for adapter '{adapter}'; pass a few example requests.")
        vectors = (
            self.embed(texts) if embeddings is None else np.ascontiguousarray(embeddings, dtype=np.float32)
        )
        if self.index is None:
            self.index = self._faiss.IndexFlatIP(vectors.shape[1])
        if vectors.shape[1] != self.index.d:
            raise DSuiteError(f"Exemplar vectors have {vectors.shape[1]} dims; the index has {self.index.d}.")
        self.index.add(vectors)
        self.labels.extend([adapter] * len(vectors))
        return self.index.ntotal

    def copy(self) -> Router:
        """An independent copy (same vectors, labels and settings; nothing is embedded again)."""
        other = Router(threshold=self.threshold, k=self.k, embed_fn=self._embed_fn)
        if self.index is not None:
            other.index = self._faiss.IndexFlatIP(self.index.d)
            other.index.add(self.index.reconstruct_n(0, self.index.ntotal))
            other.labels = list(self.labels)
        return other

    def remove(self, adapter: str) -> None:
        """Drop an adapter's exemplars (the rest of the index is kept, not re-embedded)."""
        keep = np.array([i for i, label in enumerate(self.labels) if label != adapter], dtype=np.int64)
        if self.index is None or len(keep) == len(self.labels):
            return
        vectors = self.index.reconstruct_n(0, self.index.ntotal)[keep] if len(keep) else None
        self.index = None
        labels = [self.labels[i] for i in keep]
        self.labels = []
        if vectors is not None:
            self.index = self._faiss.IndexFlatIP(vectors.shape[1])
            self.index.add(np.ascontiguousarray(vectors))
            self.labels = labels

    def _scores(self, vectors: np.ndarray) -> list[list[tuple[str, float]]]:
        if self.index is None or not self.labels:
            raise DSuiteError(
                "The router has no adapters yet; add exemplars with Router.add(adapter, texts)."
            )
        k = min(self.k, self.index.ntotal)
        sims, ids = self.index.search(vectors, k)
        ranked = []
        for row_sims, row_ids in zip(sims, ids, strict=True):
            votes: dict[str, list[float]] = {}
            for sim, idx in zip(row_sims, row_ids, strict=True):
                if idx >= 0:
                    votes.setdefault(self.labels[idx], []).append(float(sim))
            scores = {a: (sum(s) / len(s)) * (len(s) / k) for a, s in votes.items()}
            ranked.append(sorted(scores.items(), key=lambda item: -item[1]))
        return ranked

    def route_batch(self, texts: Sequence[str]) -> list[RouteResult]:
        """:meth:`route` for many texts (one embedding pass)."""
        results = []
        for ranked in self._scores(self.embed(texts)):
            best, confidence = ranked[0]
            adapter = best if confidence >= self.threshold else None
            results.append(RouteResult(adapter, confidence, ranked[1:4], best))
        return results

    def route(self, text: str) -> RouteResult:
        """The adapter for ``text`` (``None`` when the confidence is below the threshold), with runners-up."""
        if not isinstance(text, str) or not text.strip():
            raise DSuiteError("route() needs a non-empty text.")
        return self.route_batch([text])[0]

    def calibrate(
        self,
        texts: Sequence[str],
        labels: Sequence[str | None],
        min_coverage: float = 0.97,
        objective: str = "accuracy",
    ) -> dict:
        """Choose the abstention threshold on held-out queries.

        ``objective="accuracy"``: with out-of-domain queries among them (label ``None``), the threshold
        maximises routing accuracy over all of them (abstaining is right for those, wrong for the others).
        ``objective="coverage"``, or in-domain queries only: the highest threshold that still routes
        ``min_coverage`` of the correctly routed in-domain queries; out-of-domain queries then only measure
        the abstention this buys. Use it when sending an in-domain query to the bare base costs more than
        sending an off-topic one to an adapter, or when the out-of-domain queries outnumber the others.

        Returns:
            ``{"threshold", "accuracy", "abstention", "n"}`` on the calibration queries.
        """
        if len(texts) != len(labels) or not texts:
            raise DSuiteError(
                f"calibrate() needs as many labels as texts (got {len(texts)} and {len(labels)})."
            )
        results = self.route_batch(texts)
        confidences = np.array([r.confidence for r in results])
        correct = np.array([r.best == label for r, label in zip(results, labels, strict=True)])
        in_domain = np.array([label is not None for label in labels])
        if objective not in ("accuracy", "coverage"):
            raise DSuiteError(f"Unknown calibration objective {objective!r}; use 'accuracy' or 'coverage'.")
        if objective == "accuracy" and (~in_domain).any():
            best_acc, best_t = -1.0, 0.0
            for t in np.unique(np.concatenate([[0.0], confidences])):
                routed = confidences >= t
                acc = np.mean(np.where(in_domain, routed & correct, ~routed))
                if acc > best_acc:
                    best_acc, best_t = float(acc), float(t)
            self.threshold = best_t
        else:
            good = np.sort(confidences[correct & in_domain])
            self.threshold = float(good[int((1 - min_coverage) * len(good))]) if len(good) else 0.0
        routed = confidences >= self.threshold
        accuracy = float(np.mean(np.where(in_domain, routed & correct, ~routed)))
        report = {
            "threshold": self.threshold,
            "accuracy": accuracy,
            "abstention": float(np.mean(~routed)),
            "in_domain_routed": float(np.mean((routed & correct)[in_domain])) if in_domain.any() else None,
            "out_of_domain_abstained": float(np.mean(~routed[~in_domain])) if (~in_domain).any() else None,
            "n": len(texts),
        }
        logger.info("router calibrated: %s", report)
        return report

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the index (faiss binary) and labels/settings (JSON) into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.index is not None:
            tmp = folder / f".{INDEX_FILE}.tmp"
            self._faiss.write_index(self.index, str(tmp))
            os.replace(tmp, folder / INDEX_FILE)
        tmp = folder / f".{META_FILE}.tmp"
        tmp.write_text(json.dumps({"threshold": self.threshold, "k": self.k, "labels": self.labels}))
        os.replace(tmp, folder / META_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, embed_fn: Callable | None = None) -> Router:
        """Read a router written by :meth:`save`."""
        folder = Path(folder)
        if not (folder / META_FILE).is_file():
            raise DSuiteError(f"No router in '{folder}' (expected {META_FILE} and {INDEX_FILE}).")
        meta = json.loads((folder / META_FILE).read_text())
        router = cls(threshold=meta["threshold"], k=meta["k"], embed_fn=embed_fn)
        router.labels = list(meta["labels"])
        if (folder / INDEX_FILE).is_file():
            router.index = router._faiss.read_index(str(folder / INDEX_FILE))
        if router.index is not None and router.index.ntotal != len(router.labels):
            raise DSuiteError(
                f"Router in '{folder}' is inconsistent: {router.index.ntotal} vectors, "
                f"{len(router.labels)} labels. Rebuild it."
            )
        return router

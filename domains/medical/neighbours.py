"""Code votes of the most similar training notes (k nearest neighbours over TF-IDF n-gram vectors).

A note is represented by the set of its normalised 1-2-word n-grams (``lexicon.ngrams``: the same words the
code lexicon reads) weighted by inverse document frequency and L2-normalised. The ``k`` training notes with
the highest cosine similarity vote for each of their codes with weight ``similarity ** power``; a code's vote
is its share of the total weight (0..1). The votes are a ranking feature and a source of candidates: codes
that similar notes carry although no phrase of this note names them. Stored as JSON
(``data/medical/icd_neighbours.json``: the n-gram vocabulary with idf, and per training note its n-gram ids
and codes; no note text), nothing is unpickled.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import sparse

from core_model.errors import DSuiteError
from domains.medical.artifacts import read_json, write_json
from domains.medical.lexicon import ngrams

FORMAT = 1


class NoteNeighbours:
    """TF-IDF nearest training notes and the votes of their codes."""

    def __init__(
        self,
        vocab: list[str],
        idf: list[float],
        note_grams: list[list[int]],
        note_codes: list[list[str]],
        k: int = 40,
        power: float = 2.0,
    ) -> None:
        if len(vocab) != len(idf) or len(note_grams) != len(note_codes):
            raise DSuiteError(
                "Neighbour data is inconsistent (vocabulary and idf, or note n-grams and codes, differ in "
                "length); retrain with `dsuite medical train-ranker`."
            )
        self.vocab = vocab
        self.index = {gram: i for i, gram in enumerate(vocab)}
        self.idf = np.asarray(idf, dtype=np.float64)
        self.note_grams = note_grams
        self.note_codes = note_codes
        self.k = k
        self.power = power
        rows = [i for i, grams in enumerate(note_grams) for _ in grams]
        cols = [g for grams in note_grams for g in grams]
        values = self.idf[cols] if cols else np.zeros(0)
        matrix = sparse.csr_matrix((values, (rows, cols)), shape=(len(note_grams), len(vocab)))
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
        self.matrix = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix

    @classmethod
    def fit(
        cls, notes: Iterable[tuple[str, list[str]]], k: int = 40, power: float = 2.0, min_df: int = 2
    ) -> NoteNeighbours:
        """Index coded training notes.

        Args:
            notes: ``(text, codes)`` pairs.
            k: neighbours that vote.
            power: exponent of the similarity weights (higher: the closest notes count more).
            min_df: n-grams in fewer training notes are left out of the vocabulary.
        """
        grams_of, codes_of = [], []
        df: Counter[str] = Counter()
        for text, codes in notes:
            grams = set(ngrams(text))
            grams_of.append(grams)
            codes_of.append(sorted(set(codes)))
            df.update(grams)
        vocab = sorted(g for g, n in df.items() if n >= min_df)
        index = {g: i for i, g in enumerate(vocab)}
        n = len(grams_of)
        idf = [round(math.log((1 + n) / (1 + df[g])) + 1.0, 6) for g in vocab]
        note_grams = [sorted(index[g] for g in grams if g in index) for grams in grams_of]
        return cls(vocab, idf, note_grams, codes_of, k=k, power=power)

    def vector(self, text: str) -> sparse.csr_matrix:
        """The L2-normalised TF-IDF row of ``text``."""
        cols = sorted({self.index[g] for g in ngrams(text) if g in self.index})
        values = self.idf[cols]
        norm = float(np.sqrt((values**2).sum())) or 1.0
        return sparse.csr_matrix((values / norm, ([0] * len(cols), cols)), shape=(1, len(self.vocab)))

    def votes(self, text: str) -> tuple[dict[str, float], float]:
        """Code votes of the ``k`` nearest training notes, and the similarity of the nearest one.

        Returns:
            ``({code: share of the neighbour weight}, best similarity)``; empty votes when no training
            note shares an n-gram with ``text``.
        """
        if not self.note_grams:
            return {}, 0.0
        sims = (self.matrix @ self.vector(text).T).toarray().ravel()
        k = min(self.k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.lexsort((top, -sims[top]))]  # by similarity, ties by note order: deterministic
        weights = np.maximum(sims[top], 0.0) ** self.power
        total = float(weights.sum())
        if total <= 0:
            return {}, 0.0
        votes: dict[str, float] = {}
        for note, weight in zip(top.tolist(), weights.tolist(), strict=True):
            for code in self.note_codes[note]:
                votes[code] = votes.get(code, 0.0) + weight / total
        return votes, float(sims[top[0]])

    def save(self, path: Path) -> None:
        """Write the index as JSON (atomically)."""
        data = {
            "format": FORMAT,
            "k": self.k,
            "power": self.power,
            "vocab": self.vocab,
            "idf": [float(v) for v in self.idf],
            "notes": [
                {"grams": grams, "codes": codes}
                for grams, codes in zip(self.note_grams, self.note_codes, strict=True)
            ],
        }
        write_json(path, data, separators=(",", ":"))

    @classmethod
    def load(cls, path: Path) -> NoteNeighbours:
        """Read an index written by ``save``."""
        data = read_json(
            path, "Neighbour index", f"a format-{FORMAT} neighbour index", lambda d: d.get("format") == FORMAT
        )
        notes = data["notes"]
        return cls(
            data["vocab"],
            data["idf"],
            [n["grams"] for n in notes],
            [n["codes"] for n in notes],
            k=int(data["k"]),
            power=float(data["power"]),
        )

"""The ICD candidate ranker: a logistic model over evidence features, trained on CodiEsp train.

Features per (note, candidate code): lexicon score, whether its n-gram is a word pair, and the count, best-two
sum and noisy-or of all the code's n-grams in the note; dictionary mention count and whether the code is the
term's first listing; best retrieval similarity of a mention and of a sentence; the vote of the most similar
training notes (``neighbours.py``); training frequency of the code; category-level code; share of the code
description's words present in the note; whether all evidence is historical; number of evidence spans;
whether the code has no phrase evidence at all (only sentence retrieval or neighbour votes), and every
feature times that flag (so the two kinds of candidates are weighed separately). Training is cross-fitted:
the lexicon and neighbour index that score a training note never saw that note, and the reported MAP and the
threshold come from models that never saw the notes they score. Weights, the tuned threshold and the code
frequencies are stored as JSON (``data/medical/icd_ranker.json``), the lexicon and the neighbour index
beside it; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections import Counter
from functools import lru_cache

import numpy as np
from tqdm import tqdm

from core_model.errors import DSuiteError
from domains.medical.abbreviations import expand_phrase
from domains.medical.artifacts import write_json
from domains.medical.icd_codes import describe
from domains.medical.lexicon import Lexicon
from domains.medical.neighbours import NoteNeighbours
from domains.medical.resources import MEDICAL_DATA, RANKER
from domains.medical.terms import normalize_token

log = logging.getLogger(__name__)
LEXICON_FILE = MEDICAL_DATA / "icd_lexicon.json"
NEIGHBOURS_FILE = MEDICAL_DATA / "icd_neighbours.json"
BASE_FEATURES = (
    "lexicon",
    "lexicon_bigram",
    "dict_count",
    "dict_first",
    "retrieval",
    "prior",
    "category_level",
    "desc_overlap",
    "only_historical",
    "n_evidence",
    "lexicon_x_prior",
    "lexicon_sq",
    "knn",
    "knn_sqrt",
    "lexicon_count",
    "lexicon_top2",
    "lexicon_noisy_or",
    "sentence",
)
FEATURES = (
    *BASE_FEATURES,
    "no_phrase_evidence",
    *(f"{name}*no_phrase_evidence" for name in BASE_FEATURES),
)
_WORD = re.compile(r"[a-z0-9]+")
_STOP = {
    "of",
    "the",
    "and",
    "or",
    "with",
    "without",
    "in",
    "to",
    "for",
    "other",
    "unspecified",
    "specified",
    "not",
    "elsewhere",
    "classified",
    "nos",
    "due",
    "by",
    "as",
    "on",
    "a",
    "an",
    "site",
    "type",
}


def content_words(text: str) -> set[str]:
    """The normalised words of ``text``."""
    return {normalize_token(w) for w in _WORD.findall(text.lower())}


@lru_cache(maxsize=100_000)
def description_words(code: str) -> frozenset[str]:
    """The normalised words of a code's description, without stop words ("unspecified", "other", "of" ...)."""
    return frozenset(w for w in content_words(describe(code)) if w not in _STOP)


def feature_matrix(cands: list, text: str, prior: dict[str, int]) -> np.ndarray:
    """Feature rows (``FEATURES`` order) of the candidates of one note (its abbreviations written out, as the
    coder reads them)."""
    note_words = content_words(expand_phrase(text))
    rows = []
    for c in cands:
        desc = description_words(c.code)
        overlap = len(desc & note_words) / len(desc) if desc else 0.0
        coded = c.phrase_evidence()
        p = math.log1p(prior.get(c.code, 0))
        rows.append(
            [
                c.lexicon,
                float(c.lexicon_bigram),
                math.log1p(c.dict_count),
                float(c.dict_first),
                c.retrieval,
                p,
                float("." not in c.code),
                overlap,
                float(all(e["assertion"] == "historical" for e in coded)),
                math.log1p(len(coded)),
                c.lexicon * p,
                c.lexicon**2,
                c.knn,
                math.sqrt(c.knn),
                math.log1p(c.lexicon_count),
                c.lexicon_top2,
                c.lexicon_noisy_or,
                c.sentence,
                float(not coded),
            ]
        )
    base = np.asarray(rows, dtype=np.float64).reshape(-1, len(BASE_FEATURES) + 1)
    return np.hstack([base, base[:, :-1] * base[:, -1:]])


class Ranker:
    """A logistic model over standardised features."""

    def __init__(self, data: dict) -> None:
        if data.get("features") != list(FEATURES):
            raise DSuiteError(
                f"{RANKER} was trained with features {data.get('features')}, this code expects "
                f"{list(FEATURES)}. Retrain with `dsuite medical train-ranker`."
            )
        self.data = data
        self.mean = np.asarray(data["mean"])
        self.scale = np.asarray(data["scale"])
        self.coef = np.asarray(data["coef"])
        self.intercept = float(data["intercept"])
        self.threshold = float(data["threshold"])
        self.prior = {k: int(v) for k, v in data["prior"].items()}
        self.version = data["version"]

    def score(self, cands: list, text: str) -> list[float]:
        """Probability that each candidate is a gold code."""
        if not cands:
            return []
        x = (feature_matrix(cands, text, self.prior) - self.mean) / self.scale
        return list(1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept))))


def code_prior() -> dict[str, int]:
    """Training frequency of each code (from the shipped ranker; empty if it is missing)."""
    if not RANKER.is_file():
        return {}
    return {k: int(v) for k, v in json.loads(RANKER.read_text(encoding="utf-8"))["prior"].items()}


@lru_cache(maxsize=1)
def load_ranker() -> tuple[Ranker, Lexicon, NoteNeighbours]:
    """The shipped ranker, lexicon and neighbour index.

    Raises:
        DSuiteError: the files are missing (train them with ``dsuite medical train-ranker``).
    """
    if not RANKER.is_file():
        raise DSuiteError(f"ICD ranker '{RANKER}' not found. Train it with `dsuite medical train-ranker`.")
    return (
        Ranker(json.loads(RANKER.read_text(encoding="utf-8"))),
        Lexicon.load(LEXICON_FILE),
        NoteNeighbours.load(NEIGHBOURS_FILE),
    )


def _best_threshold(scores: list[np.ndarray], labels: list[np.ndarray], n_gold: int) -> float:
    """The score threshold with the best micro-F1 (scores of codes that cannot be output are ``-inf``)."""
    flat_s, flat_y = np.concatenate(scores), np.concatenate(labels)
    best, best_f1 = 0.5, -1.0
    for t in np.arange(0.05, 0.95, 0.025):
        pred = flat_s >= t
        tp = float((pred & (flat_y == 1)).sum())
        precision = tp / max(pred.sum(), 1)
        recall = tp / max(n_gold, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-9)
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def _fit(x: np.ndarray, y: np.ndarray, c: float):
    """Standardise and fit the logistic model: ``(mean, scale, model)``."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    return mean, scale, LogisticRegression(C=c, max_iter=3000).fit((x - mean) / scale, y)


def _ranking(scores: np.ndarray, codes: list[str]) -> list[str]:
    return [code for _, code in sorted(zip(-scores, codes, strict=True))]


def train_ranker(folds: int = 5, seed: int = 0, c: float = 1.0) -> dict:
    """Train the lexicon, the neighbour index and the ranker on CodiEsp train; write them into
    ``data/medical``.

    Args:
        folds: cross-fitting folds: the lexicon, neighbour and frequency features of a training note come
            from the other folds, and the reported MAP and the threshold from rankers fitted without it.
        seed: fold assignment seed.
        c: inverse L2 strength of the logistic model.

    Returns:
        A summary (candidates, positives, candidate recall, out-of-fold MAP on train, threshold).
    """
    from domains.medical.coder import IcdCoder
    from eval.data import codiesp
    from eval.metrics import mean_average_precision

    notes = codiesp.load("train")
    prior = Counter(code for note in notes for code in note["codes"])
    order = np.random.default_rng(seed).permutation(len(notes))
    fold_of = {int(i): f % folds for f, i in enumerate(order)}
    xs, ys, groups, outputs, golds, note_folds = [], [], [], [], [], []
    for fold in range(folds):
        train_part = [(n["text"], n["codes"]) for i, n in enumerate(notes) if fold_of[i] != fold]
        fold_prior = Counter(code for _, codes in train_part for code in codes)
        coder = IcdCoder(
            "full",
            lexicon=Lexicon.fit(train_part),
            ranker=_NullRanker(),
            neighbours=NoteNeighbours.fit(train_part),
        )
        held = [n for i, n in enumerate(notes) if fold_of[i] == fold]
        for note in tqdm(held, desc=f"ranker features fold {fold + 1}/{folds}", unit="note"):
            _, cands, _ = coder.candidates(note["text"])
            usable = [c for c in cands.values() if c.rankable()]
            xs.append(feature_matrix(usable, note["text"], fold_prior))
            ys.append(np.asarray([c.code in set(note["codes"]) for c in usable], dtype=int))
            groups.append([c.code for c in usable])
            outputs.append(np.asarray([bool(c.coded_evidence()) for c in usable], dtype=bool))
            golds.append(note["codes"])
            note_folds.append(fold)
    # out-of-fold scores: the ranker that scores a note was fitted on the other folds' notes
    oof: list[np.ndarray] = [np.zeros(0)] * len(xs)
    for fold in range(folds):
        inside = [i for i, f in enumerate(note_folds) if f != fold]
        mean, scale, model = _fit(
            np.concatenate([xs[i] for i in inside]), np.concatenate([ys[i] for i in inside]), c
        )
        for i, f in enumerate(note_folds):
            if f == fold and len(xs[i]):
                oof[i] = model.predict_proba((xs[i] - mean) / scale)[:, 1]
    rankings = [_ranking(s, g) for s, g in zip(oof, groups, strict=True)]
    output_scores = [np.where(out, s, -np.inf) for s, out in zip(oof, outputs, strict=True)]
    threshold = _best_threshold(output_scores, ys, sum(len(g) for g in golds))
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    mean, scale, model = _fit(x_all, y_all, c)
    data = {
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
        "threshold": threshold,
        "prior": dict(sorted(prior.items())),
        "trained_on": f"codiesp_en train ({len(notes)} notes), {folds}-fold cross-fitted features",
    }
    data["version"] = (
        "icd_ranker@" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    )
    everything = [(n["text"], n["codes"]) for n in notes]
    Lexicon.fit(everything).save(LEXICON_FILE)
    NoteNeighbours.fit(everything).save(NEIGHBOURS_FILE)
    write_json(RANKER, data, indent=1)
    load_ranker.cache_clear()
    summary = {
        "candidates": int(len(y_all)),
        "positives": int(y_all.sum()),
        "candidate_recall": float(y_all.sum()) / sum(len(set(g)) for g in golds),
        "threshold": threshold,
        "train_out_of_fold_map": mean_average_precision(rankings, [set(g) for g in golds]),
        "version": data["version"],
    }
    log.info("ranker trained: %s", summary)
    return summary


class _NullRanker:
    """Placeholder while collecting training features (never scores)."""

    threshold = 0.0
    version = "untrained"

"""The ICD candidate ranker: a logistic model over evidence features, trained on CodiEsp train.

Features per (note, candidate code): lexicon score and whether its n-gram is a word pair; dictionary mention
count and whether the code is the term's first listing; best retrieval similarity; training frequency of the
code; category-level code; share of the code description's words present in the note; whether all evidence
is historical; number of evidence spans. Training is cross-fitted: the lexicon that scores a training note
never saw that note. Weights, the tuned threshold and the code frequencies are stored as JSON
(``data/medical/icd_ranker.json``), the lexicon beside it; nothing is unpickled.
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
from domains.medical.icd_codes import describe
from domains.medical.lexicon import Lexicon
from domains.medical.resources import MEDICAL_DATA, RANKER
from domains.medical.terms import normalize_token

log = logging.getLogger(__name__)
LEXICON_FILE = MEDICAL_DATA / "icd_lexicon.json"
FEATURES = (
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


def _words(text: str) -> set[str]:
    return {normalize_token(w) for w in _WORD.findall(text.lower())}


@lru_cache(maxsize=100_000)
def _desc_words(code: str) -> frozenset[str]:
    return frozenset(w for w in _words(describe(code)) if w not in _STOP)


def feature_matrix(cands: list, text: str, prior: dict[str, int]) -> np.ndarray:
    """Feature rows (``FEATURES`` order) of the candidates of one note."""
    note_words = _words(text)
    rows = []
    for c in cands:
        desc = _desc_words(c.code)
        overlap = len(desc & note_words) / len(desc) if desc else 0.0
        coded = c.coded_evidence()
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
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))


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
def load_ranker() -> tuple[Ranker, Lexicon]:
    """The shipped ranker and lexicon.

    Raises:
        DSuiteError: the files are missing (train them with ``dsuite medical train-ranker``).
    """
    if not RANKER.is_file():
        raise DSuiteError(f"ICD ranker '{RANKER}' not found. Train it with `dsuite medical train-ranker`.")
    return Ranker(json.loads(RANKER.read_text(encoding="utf-8"))), Lexicon.load(LEXICON_FILE)


def _best_threshold(scores: list[np.ndarray], labels: list[np.ndarray], n_gold: int) -> float:
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


def train_ranker(folds: int = 5, seed: int = 0) -> dict:
    """Train the lexicon and the ranker on CodiEsp train and write both into ``data/medical``.

    Args:
        folds: cross-fitting folds for the lexicon features of the training notes.
        seed: fold assignment seed.

    Returns:
        A summary (candidates, positives, threshold, cross-fitted MAP on train).
    """
    from sklearn.linear_model import LogisticRegression

    from domains.medical.coder import IcdCoder
    from eval.data import codiesp
    from eval.metrics import mean_average_precision

    notes = codiesp.load("train")
    prior = Counter(code for note in notes for code in note["codes"])
    order = np.random.default_rng(seed).permutation(len(notes))
    fold_of = {int(i): f % folds for f, i in enumerate(order)}
    xs, ys, rankings, golds, groups = [], [], [], [], []
    for fold in range(folds):
        train_part = [(n["text"], n["codes"]) for i, n in enumerate(notes) if fold_of[i] != fold]
        lexicon = Lexicon.fit(train_part)
        fold_prior = Counter(code for _, codes in train_part for code in codes)
        coder = IcdCoder("full", lexicon=lexicon, ranker=_NullRanker())
        held = [n for i, n in enumerate(notes) if fold_of[i] == fold]
        for note in tqdm(held, desc=f"ranker features fold {fold + 1}/{folds}", unit="note"):
            _, cands, _ = coder.candidates(note["text"])
            usable = [c for c in cands.values() if c.coded_evidence()]
            x = feature_matrix(usable, note["text"], fold_prior)
            y = np.asarray([c.code in set(note["codes"]) for c in usable], dtype=int)
            xs.append(x)
            ys.append(y)
            groups.append([c.code for c in usable])
            golds.append(note["codes"])
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    mean, scale = x_all.mean(axis=0), x_all.std(axis=0) + 1e-6
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x_all - mean) / scale, y_all)
    scores = [model.predict_proba((x - mean) / scale)[:, 1] if len(x) else np.zeros(0) for x in xs]
    for s, codes in zip(scores, groups, strict=True):
        rankings.append([c for _, c in sorted(zip(-s, codes, strict=True))])
    threshold = _best_threshold(scores, ys, sum(len(g) for g in golds))
    data = {
        "features": list(FEATURES),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "coef": model.coef_[0].tolist(),
        "intercept": float(model.intercept_[0]),
        "threshold": threshold,
        "prior": dict(sorted(prior.items())),
        "trained_on": "codiesp_en train (500 notes), cross-fitted lexicon features",
    }
    data["version"] = (
        "icd_ranker@" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    )
    Lexicon.fit([(n["text"], n["codes"]) for n in notes]).save(LEXICON_FILE)
    tmp = RANKER.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(RANKER)
    load_ranker.cache_clear()
    summary = {
        "candidates": int(len(y_all)),
        "positives": int(y_all.sum()),
        "threshold": threshold,
        "train_crossfit_map": mean_average_precision(rankings, golds),
        "candidate_recall": float(y_all.sum()) / sum(len(g) for g in golds),
        "version": data["version"],
    }
    log.info("ranker trained: %s", summary)
    return summary


class _NullRanker:
    """Placeholder while collecting training features (never scores)."""

    threshold = 0.0
    version = "untrained"

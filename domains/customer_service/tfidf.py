"""Character n-gram TF-IDF + logistic regression: the lexical half of the intent ensemble.

Saved without pickles: ``tfidf.json`` (vocabulary, idf, settings) and ``tfidf_lr.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path

SETTINGS = {"analyzer": "char_wb", "ngram_range": [2, 4], "sublinear_tf": True, "min_df": 2}


def fit(texts: list[str], y, classes: int, c: float = 20.0):
    """Fit the vectorizer and a logistic regression; returns ``(vectorizer, weight (C, V), bias (C,))``."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    settings = {**SETTINGS, "ngram_range": tuple(SETTINGS["ngram_range"])}
    vectorizer = TfidfVectorizer(**settings)
    x = vectorizer.fit_transform(texts)
    model = LogisticRegression(C=c, max_iter=300).fit(x, y)
    weight = np.zeros((classes, x.shape[1]), dtype=np.float32)
    bias = np.full(classes, -1e4, dtype=np.float32)  # classes absent from y never win
    weight[model.classes_] = model.coef_
    bias[model.classes_] = model.intercept_
    return vectorizer, weight, bias


def probabilities(vectorizer, weight, bias, texts: list[str]):
    """Softmax probabilities (N, C)."""
    import numpy as np

    logits = vectorizer.transform(texts) @ weight.T + bias  # (N, C)
    logits = np.asarray(logits) - np.asarray(logits).max(1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(1, keepdims=True)


def save(folder: Path, vectorizer, weight, bias) -> None:
    """Write the vectorizer as JSON and the regression as safetensors."""
    import torch
    from safetensors.torch import save_file

    vocab = {k: int(v) for k, v in vectorizer.vocabulary_.items()}
    (folder / "tfidf.json").write_text(
        json.dumps({"settings": SETTINGS, "vocabulary": vocab, "idf": [float(v) for v in vectorizer.idf_]}),
        encoding="utf-8",
    )
    save_file(
        {"weight": torch.as_tensor(weight).contiguous(), "bias": torch.as_tensor(bias).contiguous()},
        str(folder / "tfidf_lr.safetensors"),
    )


def load(folder: Path):
    """``(vectorizer, weight, bias)`` from a model folder, or None when it has no TF-IDF part."""
    import numpy as np
    from safetensors.numpy import load_file
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not (folder / "tfidf.json").is_file():
        return None
    data = json.loads((folder / "tfidf.json").read_text(encoding="utf-8"))
    settings = {**data["settings"], "ngram_range": tuple(data["settings"]["ngram_range"])}
    vectorizer = TfidfVectorizer(vocabulary=data["vocabulary"], **settings)
    vectorizer.idf_ = np.asarray(data["idf"], dtype=np.float64)
    lr = load_file(str(folder / "tfidf_lr.safetensors"))
    return vectorizer, lr["weight"], lr["bias"]

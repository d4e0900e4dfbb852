"""The coder's query embeddings: the lean MiniLM forward against sentence-transformers, and the precisions."""

from __future__ import annotations

import numpy as np
import pytest

from core_model.errors import DSuiteError
from domains.medical.embeddings import Embedder, _model, query_precision, shared_embedder
from domains.medical.fast_encoder import FastEncoder
from eval.data import codiesp

# the last one is 450 tokens long: both encoders read its first 256
SHORT = ["Fever.", "No chest pain.", "ABDOMEN: Soft, nontender, nondistended.", "Knee pain, " * 150]


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    """Hand-written lines and real clinical sentences (the first CodiEsp dev cases)."""
    found = list(SHORT)
    for case in codiesp.load("dev", limit=4):
        found += [s.strip() + "." for s in case["text"].split(". ") if s.strip()]
    return found[:60]


@pytest.fixture(scope="module")
def reference(sentences) -> np.ndarray:
    return _model("fp32").encode(sentences, batch_size=16, normalize_embeddings=True)


def test_the_lean_fp32_forward_matches_sentence_transformers(sentences, reference):
    vectors = FastEncoder(_model("fp32"), "fp32").encode(sentences)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert float(np.abs(vectors - reference).max()) < 1e-5


def test_int8_vectors_stay_close_and_do_not_depend_on_the_other_texts(sentences, reference):
    vectors = Embedder(cache_size=0, precision="int8").encode(sentences)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() > 0.98 and cosines.mean() > 0.995, (cosines.min(), cosines.mean())
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = Embedder(cache_size=0, precision="int8").encode([sentences[7]])
    assert np.array_equal(alone[0], vectors[7])  # the same whatever was embedded with it


def test_texts_of_one_length_go_through_together_and_each_gets_the_vector_it_gets_alone():
    encoder = FastEncoder(_model("fp32"), "int8")
    words = ["fever", "cough", "pain", "nausea", "rash", "edema", "syncope", "dyspnea"]
    texts = [f"Patient reports {a} and {b} today." for a, b in zip(words, reversed(words), strict=True)]
    lengths = {len(ids) for ids in encoder.tokenizer(texts)["input_ids"]}
    together = encoder.encode(texts, batch_size=3)  # batches of 3, 3 and 2 where lengths agree
    alone = np.concatenate([encoder.encode([text]) for text in texts])
    assert len(lengths) < len(texts) and np.array_equal(together, alone)


def test_the_precision_comes_from_the_environment_and_a_wrong_one_says_what_to_use(monkeypatch):
    monkeypatch.delenv("DSUITE_MEDICAL_EMBEDDINGS", raising=False)
    assert query_precision() == "int8" and shared_embedder().precision == "int8"
    monkeypatch.setenv("DSUITE_MEDICAL_EMBEDDINGS", " FP32 ")
    assert query_precision() == "fp32" and shared_embedder().precision == "fp32"
    monkeypatch.setenv("DSUITE_MEDICAL_EMBEDDINGS", "int4")
    with pytest.raises(DSuiteError, match="DSUITE_MEDICAL_EMBEDDINGS='int4'.*int8.*fp32"):
        query_precision()
    with pytest.raises(DSuiteError, match="precision='bf16'"):
        Embedder(precision="bf16")


def test_an_empty_list_embeds_to_no_rows_and_an_unknown_precision_is_refused():
    assert FastEncoder(_model("fp32"), "int8").encode([]).shape == (0, 384)
    with pytest.raises(ValueError, match="'int4': expected int8 or fp32"):
        FastEncoder(_model("fp32"), "int4")

"""Familiarity for out-of-scope rejection: a real faiss index, the rescaling, and the validation choice."""

import numpy as np
import pytest

from core_model.errors import DSuiteError
from domains.customer_service import familiarity
from domains.customer_service.metrics import choose_alpha, intent_metrics, operating_point

LABELS = ["a", "b", "c", "oos"]


def _unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_index_gives_the_nearest_similarity_and_survives_a_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    train = _unit(rng.normal(size=(300, 32))).astype(np.float32)
    near_copies = train[:20] + 0.05 * rng.normal(size=(20, 32))
    queries = _unit(np.concatenate([near_copies, rng.normal(size=(20, 32))]))
    exact = (queries @ train.T).max(1)
    index = familiarity.build_index(train)
    familiarity.save_index(index, tmp_path)
    near = familiarity.nearest_similarity(familiarity.load_index(tmp_path), queries)
    assert np.abs(near - exact).max() < 0.02  # 8-bit codes
    assert near[:20].min() > near[20:].max()  # near copies of training rows are the familiar ones


def test_index_errors_say_what_to_do(tmp_path):
    with pytest.raises(DSuiteError, match="train-intents"):
        familiarity.load_index(tmp_path)
    with pytest.raises(DSuiteError, match="non-empty"):
        familiarity.build_index(np.zeros((0, 8)))
    index = familiarity.build_index(_unit(np.random.default_rng(1).normal(size=(10, 8))))
    with pytest.raises(DSuiteError, match="dimensions"):
        familiarity.nearest_similarity(index, np.ones((2, 4)))


def test_rescale_weights_only_the_in_scope_columns():
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.2, 0.5, 0.2, 0.1]])
    near = np.array([0.5, -0.3])
    assert familiarity.rescale(probs, near, 0.0, 3) is probs
    out = familiarity.rescale(probs, near, 2.0, 3)
    assert np.allclose(out[0, :3], probs[0, :3] * 0.25) and out[0, 3] == probs[0, 3]
    assert np.all(out[1, :3] < 1e-9) and out[1, 3] == probs[1, 3]  # negative similarity: clipped to ~0


def _confident_oos(seed=0, n_in=600, n_oos=100):
    """A head that is just as confident on OOS rows as on in-scope ones; only familiarity tells them apart."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.integers(0, 3, n_in), np.full(n_oos, 3)])
    probs = np.full((len(y), 4), 0.02)
    for i, label in enumerate(y):
        top = label if label < 3 else rng.integers(0, 3)
        probs[i, top] = rng.uniform(0.6, 0.95)
    near = np.concatenate([rng.uniform(0.6, 0.95, n_in), rng.uniform(0.3, 0.7, n_oos)])
    return probs, near, y


def test_alpha_is_chosen_when_familiarity_separates_and_left_off_when_it_cannot():
    probs, near, y = _confident_oos()
    alpha = choose_alpha(probs, near, y, LABELS, familiarity.ALPHAS)
    assert alpha > 0
    _, plain, _ = operating_point(probs, y, LABELS)
    _, weighted, recall = operating_point(familiarity.rescale(probs, near, alpha, 3), y, LABELS)
    assert weighted > plain + 0.05 and recall >= 0.85
    # every exponent ties when all queries are equally familiar: the smallest (off) is kept
    assert choose_alpha(probs, np.ones(len(y)), y, LABELS, familiarity.ALPHAS) == 0.0
    assert intent_metrics(probs, y, LABELS)["in_scope_accuracy_no_reject"] == 1.0

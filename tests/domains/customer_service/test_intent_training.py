"""Intent training: the validation choices (OOS operating point, ensemble weights) and a real small run."""

import json

import numpy as np
import pytest

from domains.customer_service.intent_sets import INTENT_SETS, IntentSet
from domains.customer_service.metrics import (
    choose_threshold,
    choose_weights,
    intent_metrics,
    operating_curve,
    weight_grid,
    wilson_lower,
)

LABELS = ["a", "b", "c", "oos"]


def _synthetic(seed=0, n_in=600, n_oos=100):
    """In-scope rows are confident (mostly right), OOS rows less so, with overlap."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.integers(0, 3, n_in), np.full(n_oos, 3)])
    conf = np.concatenate([rng.beta(8, 2, n_in), rng.beta(2, 4, n_oos)])
    probs = np.zeros((len(y), 4))
    for i, label in enumerate(y):
        top = label if label < 3 and rng.random() < 0.95 else rng.integers(0, 3)
        probs[i] = (1 - conf[i]) / 3
        probs[i, top] = conf[i]
    return probs, y


def test_wilson_lower_bound():
    assert wilson_lower(91, 100) > 0.85 > wilson_lower(90, 100)
    assert wilson_lower(50, 100, z=0.0) == pytest.approx(0.5)
    assert wilson_lower(0, 0) == 0.0


def test_operating_curve_matches_intent_metrics():
    probs, y = _synthetic()
    thresholds, accuracy, caught, n_oos = operating_curve(probs, y, LABELS)
    for k in range(0, len(thresholds), 37):
        m = intent_metrics(probs, y, LABELS, float(thresholds[k]))
        assert m["in_scope_accuracy"] == pytest.approx(accuracy[k])
        assert m["oos_recall"] == pytest.approx(caught[k] / n_oos)


def test_threshold_keeps_the_recall_bound_at_the_best_in_scope_accuracy():
    probs, y = _synthetic()
    threshold = choose_threshold(probs, y, LABELS, min_recall=0.85)
    chosen = intent_metrics(probs, y, LABELS, threshold)
    assert wilson_lower(round(chosen["oos_recall"] * 100), 100) >= 0.85
    # no threshold with an acceptable recall bound has a better in-scope accuracy
    thresholds, accuracy, caught, n_oos = operating_curve(probs, y, LABELS)
    feasible = [a for a, c in zip(accuracy, caught, strict=True) if wilson_lower(int(c), n_oos) >= 0.85]
    assert chosen["in_scope_accuracy"] == pytest.approx(max(feasible))
    # the margin costs in-scope accuracy compared with the observed-recall rule, never recall
    loose = intent_metrics(probs, y, LABELS, choose_threshold(probs, y, LABELS, min_recall=0.85, z=0.0))
    assert loose["oos_recall"] >= 0.85 and loose["in_scope_accuracy"] >= chosen["in_scope_accuracy"]
    assert chosen["oos_recall"] >= loose["oos_recall"]


def test_weights_prefer_the_member_that_is_right():
    probs, y = _synthetic(n_oos=0)
    labels = LABELS[:3]
    probs = probs[:, :3] / probs[:, :3].sum(1, keepdims=True)
    noise = np.random.default_rng(1).dirichlet(np.ones(3), len(y))
    weights = choose_weights({"head": noise, "tfidf": probs}, y, labels)
    assert weights["tfidf"] > weights["head"]
    assert len(weight_grid(["head", "tfidf", "lr"])) == 55
    assert all(
        abs(sum(w.values()) - 1) < 1e-9 and w["head"] > 0 for w in weight_grid(["head", "tfidf", "lr"])
    )


KEEP = {"translate", "transfer", "pin_change", "weather", "timer", "alarm"}


def _clinc_slice(split):
    from eval.data import clinc150

    per = {"train": 15, "validation": 5, "test": 5}[split]
    seen, out = {}, []
    for row in clinc150.load(split):
        label = row["label"]
        if (label in KEEP or label == "oos") and seen.get(label, 0) < (per if label != "oos" else 2 * per):
            seen[label] = seen.get(label, 0) + 1
            out.append(row)
    return out


@pytest.mark.slow
def test_train_a_small_clinc_slice_and_reload_it(tmp_path, monkeypatch):
    from domains.customer_service.intent_training import recipe, train_intents
    from domains.customer_service.intents import IntentModel

    monkeypatch.setitem(
        INTENT_SETS, "clinc-slice", IntentSet("clinc-slice", "clinc150_oos", _clinc_slice, True)
    )
    with pytest.raises(Exception, match="refit"):
        train_intents("clinc-slice", recipe("clinc-slice", refit=True), out_dir=tmp_path / "refused")
    folder = tmp_path / "model"
    # two LoRA heads and one familiarity exponent on offer, so the saved model exercises both
    config = recipe("clinc-slice", split_layer=5, epochs=1, alphas=(2.0,), heads=2)
    meta = train_intents("clinc-slice", config, out_dir=folder)
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "baseline_lr.safetensors").is_file()
    assert (folder / "lora_head2" / "adapter_model.safetensors").is_file() and meta["heads"] == 2
    assert meta["familiarity_alpha"] == 2.0 and (folder / "familiarity.faiss").is_file()
    assert sum(meta["weights"].values()) == pytest.approx(1.0) and meta["threshold"] is not None
    assert meta["metrics"]["validation"]["in_scope_accuracy"] >= 0.8

    # the saved model (familiarity included) reproduces the validation figures it was chosen with
    rows = _clinc_slice("validation")
    model = IntentModel.load(folder)
    preds = model.predict([r["text"] for r in rows])
    in_scope = [(p.label, r["label"]) for p, r in zip(preds, rows, strict=True) if r["label"] != "oos"]
    accuracy = sum(p == g for p, g in in_scope) / len(in_scope)
    assert accuracy == pytest.approx(meta["metrics"]["validation"]["in_scope_accuracy"], abs=1e-6)

    # the frozen-embedding regression as a member needs a second, un-tuned encoder pass
    meta["weights"] = {"head": 0.5, "lr": 0.5}
    meta["familiarity_alpha"] = 0.0
    (folder / "meta.json").write_text(json.dumps(meta))
    mixed = IntentModel.load(folder)
    texts = [r["text"] for r in rows[:8]]
    vectors = mixed.embed(texts)
    assert vectors.shape == (8, 2 * 384)  # the two heads' encoders side by side
    probs = mixed.probabilities(vectors, texts)
    assert probs.shape == (8, len(meta["labels"])) and np.allclose(probs.sum(1), 1.0)
    with pytest.raises(Exception, match="embed"):
        mixed.probabilities(vectors[:, :384], texts)

    # familiarity only lowers the in-scope probabilities (similarities are at most 1), never the OOS one
    meta["familiarity_alpha"] = 2.0
    (folder / "meta.json").write_text(json.dumps(meta))
    weighted = IntentModel.load(folder)
    scaled = weighted.probabilities(weighted.embed(texts), texts)
    oos = meta["labels"].index("oos")
    assert np.all(scaled <= probs + 1e-9) and np.allclose(scaled[:, oos], probs[:, oos])


def test_more_heads_need_the_encoder_lora():
    from core_model.errors import DSuiteError
    from domains.customer_service.intent_training import recipe, train_intents

    with pytest.raises(DSuiteError, match="lora=True"):
        train_intents("bitext", recipe("bitext", heads=2), evaluate_test=False)
    with pytest.raises(DSuiteError, match="heads=0"):
        train_intents("clinc150", recipe("clinc150", heads=0), evaluate_test=False)

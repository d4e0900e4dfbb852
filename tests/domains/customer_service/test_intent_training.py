"""Intent training: the validation choices (OOS operating point, ensemble weights) and a real small run."""

import dataclasses
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
    modules = json.loads((folder / "adapter_config.json").read_text())["target_modules"]
    assert modules == sorted(modules)  # the same file from every run (peft saves a set)
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


def test_subset_batches_keeps_the_rows_and_renumbers_them():
    import torch

    from domains.customer_service.intent_training import _subset_batches

    hidden = torch.arange(6 * 2 * 3, dtype=torch.float16).reshape(6, 2, 3)
    mask = torch.ones(6, 2, dtype=torch.long)
    batches = [
        (torch.tensor([4, 0, 2]), hidden[:3], mask[:3]),
        (torch.tensor([1, 5, 3]), hidden[3:], mask[3:]),
    ]
    out = _subset_batches(batches, [1, 2, 5])  # split rows 1, 2, 5 become 0, 1, 2
    got = {int(i): h for idx, h, _ in out for i, h in zip(idx, h, strict=True)}
    assert sorted(got) == [0, 1, 2]
    assert (
        torch.equal(got[0], hidden[3]) and torch.equal(got[1], hidden[2]) and torch.equal(got[2], hidden[4])
    )


@pytest.mark.slow
def test_out_of_fold_oos_queries_join_validation_for_the_choices(tmp_path, monkeypatch):
    """The OOS training queries are scored by fits that did not see them, and the final model is the one a
    run without folds trains."""
    from domains.customer_service.intent_training import recipe, train_intents

    monkeypatch.setitem(
        INTENT_SETS, "clinc-slice", IntentSet("clinc-slice", "clinc150_oos", _clinc_slice, True)
    )
    config = recipe("clinc-slice", split_layer=6, lora=False, alphas=(0.0, 2.0))
    n_oos_train = sum(r["label"] == "oos" for r in _clinc_slice("train"))
    with pytest.raises(Exception, match="at most that many"):
        train_intents(
            "clinc-slice", dataclasses.replace(config, oos_folds=n_oos_train + 1), evaluate_test=False
        )
    plain = train_intents("clinc-slice", config, out_dir=tmp_path / "plain", evaluate_test=False)
    folded = train_intents(
        "clinc-slice",
        dataclasses.replace(config, oos_folds=3),
        out_dir=tmp_path / "folded",
        evaluate_test=False,
    )
    n_validation = len(_clinc_slice("validation"))
    assert plain["chosen_on"] == {"validation": n_validation, "oos_train_out_of_fold": 0}
    assert folded["chosen_on"] == {"validation": n_validation, "oos_train_out_of_fold": n_oos_train}
    selection = folded["metrics"]["selection"]
    assert selection["n"] == n_validation + n_oos_train
    assert selection["n_oos"] == folded["metrics"]["validation"]["n_oos"] + n_oos_train
    assert "selection" not in plain["metrics"]
    # the folds are fitted after the final model and leave it as it was
    head = "head.safetensors"
    assert (tmp_path / "plain" / head).read_bytes() == (tmp_path / "folded" / head).read_bytes()


def test_out_of_fold_needs_two_folds_and_oos_queries():
    from core_model.errors import DSuiteError
    from domains.customer_service.intent_training import recipe, train_intents

    with pytest.raises(DSuiteError, match="oos_folds=1"):
        train_intents("clinc150", recipe("clinc150", oos_folds=1), evaluate_test=False)
    with pytest.raises(DSuiteError, match="banking77 has no out-of-scope"):
        train_intents("banking77", recipe("banking77", oos_folds=3), evaluate_test=False)

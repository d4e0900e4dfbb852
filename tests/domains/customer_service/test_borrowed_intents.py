"""Plain requests borrowed from CLINC150 and BANKING77 for the Bitext intents they share."""

import json

import pytest

from core_model.errors import DSuiteError
from domains.customer_service import borrowed_intents
from domains.customer_service.intent_sets import get_intent_set


def test_every_borrowed_row_carries_a_bitext_intent_and_no_test_row_is_trained_on():
    from eval.data import bitext

    bitext_labels = {r["label"] for r in bitext.load("train")}
    rows = {split: borrowed_intents.load(split) for split in borrowed_intents.SPLITS}
    assert all(rows.values())
    assert {r["label"] for split in rows.values() for r in split} <= bitext_labels
    # every mapped source intent contributes to every split
    for split in rows.values():
        assert {r["source"] for r in split} == {f"{c}:{i}" for c, i in borrowed_intents.mapping()}
    train_texts = {r["text"].lower() for r in rows["train"] + rows["validation"]}
    assert not any(r["text"].lower() in train_texts for r in rows["test"])


def test_the_bitext_intent_set_trains_on_borrowed_rows_and_reports_them_apart():
    from eval.data import bitext

    spec = get_intent_set("bitext")
    assert spec.extra_tests == ("plain_test",)
    assert len(spec.load("train")) == len(bitext.load("train")) + len(borrowed_intents.load("train"))
    assert spec.load("test") == bitext.load("test")  # the Bitext test figure stays Bitext's own
    assert spec.load("plain_test") == borrowed_intents.load("test")


def test_the_shipped_bitext_model_understands_plain_requests():
    """The borrowed corpora's test rows, never trained on: accuracy, and the same figure as its meta."""
    from domains.customer_service.intents import IntentModel

    model = IntentModel.load("bitext")
    rows = borrowed_intents.load("test")
    preds = model.predict([r["text"] for r in rows])
    accuracy = sum(p.label == r["label"] for p, r in zip(preds, rows, strict=True)) / len(rows)
    assert accuracy >= 0.9
    assert accuracy == pytest.approx(model.meta["metrics"]["plain_test"]["accuracy"], abs=1e-9)


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ([{"corpus": "clinc150", "intent": "order"}], "lacks bitext_intent"),
        (
            [
                {"corpus": "clinc150", "intent": "order", "bitext_intent": "place_order"},
                {"corpus": "clinc150", "intent": "order", "bitext_intent": "change_order"},
            ],
            "mapped twice",
        ),
    ],
)
def test_a_broken_map_is_refused_with_what_to_fix(tmp_path, sources, message):
    path = tmp_path / "borrowed_intents.json"
    path.write_text(json.dumps({"sources": sources}), encoding="utf-8")
    with pytest.raises(DSuiteError, match=message):
        borrowed_intents.mapping(path)


def test_a_source_intent_its_corpus_lacks_is_named(monkeypatch):
    monkeypatch.setattr(borrowed_intents, "mapping", lambda: {("clinc150", "order_stat"): "track_order"})
    with pytest.raises(DSuiteError, match="no intent order_stat"):
        borrowed_intents.load("train")
    with pytest.raises(DSuiteError, match="unknown"):
        borrowed_intents.load("dev")

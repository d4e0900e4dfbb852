"""Continual learner on a tiny base: gates, refusal removes the adapter, routing, report (BWT, routed)."""

from __future__ import annotations

import pytest

from adapters.config import LoraTrainConfig
from adapters.continual import ContinualLearner, Gates
from adapters.tasks import LabelTask
from core_model.errors import DSuiteError


def _task(name, texts_by_label, instruction):
    rows = [{"text": t, "label": label} for label, texts in texts_by_label.items() for t in texts]
    return LabelTask(name, instruction, tuple(texts_by_label), tuple(rows), tuple(rows[::3]))


BANK = _task(
    "bank",
    {
        "card": [
            "my card has not arrived",
            "where is my new card",
            "card still missing",
            "card delivery is late",
            "when will my card come",
            "card not received",
        ],
        "refund": [
            "I want my money back",
            "refund this purchase",
            "please refund me",
            "how do I get a refund",
            "return money for the order",
            "refund request",
        ],
    },
    "Bank request: {text}",
)
CARS = _task(
    "cars",
    {
        "gas": [
            "how much fuel is left",
            "is my tank almost empty",
            "do I need gas soon",
            "fuel level please",
            "petrol left in the car",
            "how far can I go on this gas",
        ],
        "traffic": [
            "is the highway jammed",
            "traffic on my commute",
            "how bad is traffic now",
            "any congestion downtown",
            "road delays today",
            "is rush hour busy",
        ],
    },
    "Car request: {text}",
)


def test_sequence_gates_and_report(tiny_base, registry, tmp_path):
    learner = ContinualLearner(
        tiny_base,
        registry,
        config=LoraTrainConfig.preset("tiny").with_(max_steps=2),
        gates=Gates(min_accuracy=0.0, min_gain=-1.0, max_forgetting=0.0, min_router_accuracy=0.0),
        progress=False,
        ood_calibration=["what is the capital of France", "tell me a joke"],
        ood_test=["who wrote hamlet"],
    )
    first = learner.add_domain("bank", BANK)
    second = learner.add_domain("cars", CARS)
    assert first["accepted"] and second["accepted"]
    assert second["forgetting"] == {"bank": 0.0}  # frozen adapters: told-the-domain accuracy cannot drop
    assert registry.resolve("bank@stable").version == 1

    strict = ContinualLearner(
        tiny_base,
        registry,
        config=LoraTrainConfig.preset("tiny").with_(max_steps=1),
        gates=Gates(min_accuracy=1.01),
        progress=False,
    )
    refused = strict.add_domain("bank2", _task("bank2", {"x": ["a b", "c d"], "y": ["e f", "g h"]}, "{text}"))
    assert not refused["accepted"] and not refused["gates"]["min_accuracy"]
    assert "bank2" not in registry.names()  # the refused adapter is removed

    report = learner.report()
    assert report["domains"] == ["bank", "cars"]
    assert report["bwt"] == 0.0
    assert len(report["matrix"]) == 2 and report["matrix"][0][1] is None
    assert 0.0 <= report["router_accuracy"] <= 1.0 and report["ood_abstention_rate"] is not None
    answer = learner.infer("my card never arrived")
    assert answer["routed"] and answer["domain"] in ("bank", "cars") and answer["label"]
    assert learner.infer("is traffic bad", domain="cars")["label"] in ("gas", "traffic")
    with pytest.raises(DSuiteError, match="already in this run"):
        learner.add_domain("bank", BANK)

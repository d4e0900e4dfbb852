"""Router with the real all-MiniLM-L6-v2 and a faiss index: routing, abstention, append, save/load."""

from __future__ import annotations

import pytest

from adapters.router import Router
from core_model.errors import DSuiteError

BANKING = [
    "My card has not arrived yet",
    "How do I change my PIN?",
    "I want a refund for this purchase",
    "My top-up failed",
    "What exchange rate do you use?",
    "Someone stole my card",
]
CARS = [
    "How much gas is left in my tank?",
    "Check my tire pressure",
    "When is my next oil change due?",
    "How is the traffic on the way to work?",
    "Get me an uber to the airport",
    "My battery is dead, jump start",
]
MEDICAL = [
    "No evidence of pneumonia on the chest x-ray.",
    "Patient denies chest pain.",
    "There is mild edema of the extremities.",
    "History of type 2 diabetes mellitus.",
    "The lungs are clear to auscultation.",
    "No fever or chills.",
]


@pytest.fixture(scope="module")
def router():
    router = Router(k=5)
    router.add("banking", BANKING)
    router.add("cars", CARS)
    return router


def test_routes_held_out_queries(router):
    results = router.route_batch(["I lost my debit card", "is there a lot of traffic downtown"])
    assert [r.adapter for r in results] == ["banking", "cars"]
    assert results[0].confidence > results[0].runners_up[0][1]


def test_append_embeds_only_new_exemplars(router):
    calls = []
    original = router.embed

    def counting(texts):
        calls.append(len(texts))
        return original(texts)

    router.embed = counting
    before = router.index.ntotal
    router.add("medical", MEDICAL)
    assert calls == [len(MEDICAL)] and router.index.ntotal == before + len(MEDICAL)
    assert router.route("Patient has no shortness of breath.").adapter == "medical"


def test_calibrated_abstention_and_save_load(router, tmp_path):
    calibration = [
        "Did my transfer go through?",
        "How many miles per gallon does my car get?",
        "Negative for lymphadenopathy.",
    ]
    ood = ["What is the capital of France?", "Tell me a joke about penguins", "Who wrote Hamlet?"]
    report = router.calibrate(calibration + ood, ["banking", "cars", "medical", None, None, None])
    assert report["accuracy"] >= 5 / 6
    assert router.route("Who painted the Mona Lisa?").adapter is None  # abstains to the base
    assert router.route("I want to cancel my card payment").adapter == "banking"
    router.save(tmp_path / "router")
    again = Router.load(tmp_path / "router")
    assert again.labels == router.labels and again.threshold == router.threshold
    assert again.route("my tyres look flat").best == "cars"
    with pytest.raises(DSuiteError, match="no adapters yet"):
        Router().route("hello")


def test_coverage_objective_keeps_in_domain_queries_routed(router):
    calibration = [
        "Did my transfer go through?",
        "How many miles per gallon does my car get?",
        "Negative for lymphadenopathy.",
    ]
    ood = ["What is the capital of France?", "Tell me a joke about penguins", "Who wrote Hamlet?"]
    labels = ["banking", "cars", "medical", None, None, None]
    report = router.calibrate(calibration + ood, labels, min_coverage=0.99, objective="coverage")
    confidences = [r.confidence for r in router.route_batch(calibration)]
    assert router.threshold == pytest.approx(min(confidences))  # the least confident in-domain query
    assert report["in_domain_routed"] == 1.0
    assert 0.0 <= report["out_of_domain_abstained"] <= 1.0
    with pytest.raises(DSuiteError, match="objective"):
        router.calibrate(calibration, labels[:3], objective="recall")

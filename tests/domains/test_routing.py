"""The hub's domain router on the shipped index and real held-out requests of each source."""

from __future__ import annotations

import pytest

from adapters.router import RouteResult
from core_model.errors import DSuiteError
from domains import routing


@pytest.fixture(scope="module")
def router():
    return routing.load_domain_router()


def test_held_out_requests_go_to_their_pipeline_and_everyday_ones_to_none(router):
    """60 test requests per label (never exemplars, never the threshold's validation rows)."""
    rows = routing.labelled("test", {label: 60 for label in routing.LABELS})
    scores = routing.routing_accuracy(router, rows)["routed"]
    for label, routed in scores.items():
        assert routed.get(label, 0) >= 0.85 * sum(routed.values()), (label, routed)
    assert router.route("Where is my order 12345? It has not arrived.").pipeline == "customer_service"
    assert router.route("What is the capital of France?").pipeline is None


def test_the_shipped_router_is_the_one_its_sources_build(router):
    """Same exemplar counts as the sources give now and one vector per exemplar: rebuild with
    `dsuite build-routes` when a source changes."""
    train = routing.labelled("train", routing.EXEMPLARS)
    counts = {label: sum((e or routing.GENERAL) == label for _, e in train) for label in routing.LABELS}
    assert router.meta["exemplars"] == counts
    assert router.router.index.ntotal == len(router.router.labels) == len(train)
    assert router.threshold == router.meta["threshold"] == router.router.threshold
    # the figures the README quotes; finance's term questions ("What is a debenture?") share their shape with
    # the general class's ("What is jazz?"), so finance gives up some of them to keep jazz from the advisor
    floors = {"customer_service": 0.95, "medical": 0.95, "finance": 0.85, "general": 0.94}
    floors |= {"general_term_questions": 0.85, "general_clinc150": 0.95}
    for name, floor in floors.items():
        assert router.meta["test"][name]["accuracy"] >= floor, name


def test_exemplars_validation_and_test_do_not_share_a_request():
    splits = {s: {t.strip().lower() for t, _ in routing.labelled(s)} for s in routing.SPLITS}
    assert not splits["train"] & splits["test"] and not splits["validation"] & splits["test"]
    assert not splits["train"] & splits["validation"]
    turns = {t.strip().lower() for t in routing.finance_conversation_turns()}
    assert len(turns) == 31 and not turns & splits["train"]


def test_general_or_unsure_goes_to_no_pipeline():
    def result(best, confidence):
        return RouteResult(None, confidence, [], best)

    assert routing.decide(result("medical", 0.5), 0.2) == "medical"
    assert routing.decide(result("medical", 0.1), 0.2) is None
    assert routing.decide(result(routing.GENERAL, 0.9), 0.2) is None
    results = [result("finance", 0.3), result("finance", 0.1), result(routing.GENERAL, 0.6)]
    # 0.3 must route, 0.1 must not: any threshold in (0.1, 0.3] is right on all three; the lowest is kept
    assert routing.choose_threshold(results, ["finance", None, None]) == (0.12, 0.0)
    # a wrong pipeline costs twice a miss: one miss (the 0.1 request) beats routing two everyday ones
    results = [result("medical", 0.1)] + [result("medical", 0.2)] * 2
    assert routing.choose_threshold(results, ["medical", None, None]) == (0.22, 1 / 3)
    assert routing.routing_cost(["medical", None, "finance"], ["medical", "medical", None]) == 1 + 2


def test_domains_claim_what_they_read_as_theirs():
    """Customer service's own reading: a request to speak to a person; finance's: a ticker or a term of the
    project's glossary; FIBO-only words ("daily", "name"), questions about the assistant and everyday requests
    claim nothing; the claim decides only what the exemplars leave to the base."""
    texts = [
        "Is GOOG above its 50-day moving average?",
        "OK, then what is a limit order?",
        "can I speak to a real person",
        "Can I talk to someone about my Roth IRA?",  # a person first
        "are you a real person?",
        "Set a daily alarm for 7 am",
        "What is your name?",
        "Where is my order 12345?",
    ]
    service, finance = "customer_service", "finance"
    assert routing.claims(texts) == [finance, finance, service, service, None, None, None, None]
    assert routing.claims(texts, (finance,))[2:4] == [None, finance]
    with pytest.raises(DSuiteError, match="No claim for medical"):
        routing.claims(texts, ("medical",))

    def result(best, confidence):
        return RouteResult(None, confidence, [], best)

    assert routing.decide(result(routing.GENERAL, 0.9), 0.2, finance) == finance
    assert routing.decide(result("medical", 0.1), 0.2, finance) == finance
    assert routing.decide(result("medical", 0.5), 0.2, finance) == "medical"
    # the validation cost decides which claims the shipped router reads: each kept unless it raises the cost
    record = routing.load_domain_router().meta["claims"]
    costs = {t["domain"]: t["validation_cost"] for t in record["tried"]}
    kept = [domain for domain, cost in costs.items() if cost["with"] <= cost["without"]]
    assert record["used"] == kept == list(routing.load_domain_router().claims_used)


def test_a_request_for_a_person_reaches_customer_service(router):
    """The exemplars leave "can I speak to a real person" to the base (Bitext asks for a "live agent"); the
    support pipeline's claim sends it, and plainer phrasings, where the customer can be handed over."""
    asks = ["can I speak to a real person", "let me talk to a human please", "put me through to an operator"]
    routes = router.route_batch(asks)
    assert [r.pipeline for r in routes] == ["customer_service"] * 3
    assert routes[0].claimed and routes[0].best == routing.GENERAL
    assert router.route("are you a real person?").pipeline is None


def test_the_advisors_scripted_turns_reach_it(router):
    """The 31 turns of the advisor's scripted conversations (never exemplars): tickers and glossary terms
    carry the ones whose wording alone looks everyday ("How is SPY doing right now?")."""
    turns = routing.finance_conversation_turns()
    routes = router.route_batch(turns)
    assert sum(r.pipeline == "finance" for r in routes) >= 28
    spy = router.route("How is SPY doing right now?")
    assert spy.pipeline == "finance" and spy.claimed


def test_a_missing_router_says_how_to_build_it(tmp_path):
    with pytest.raises(DSuiteError, match="dsuite build-routes"):
        routing.load_domain_router.__wrapped__(tmp_path)
    with pytest.raises(DSuiteError, match="unknown"):
        routing.labelled("dev")


def test_dsuite_route_prints_the_decision_and_refuses_an_empty_request():
    from tests.conftest import invoke_dsuite, last_json

    out = invoke_dsuite("route", "Where is my order 12345?")
    assert out.returncode == 0, out.stderr
    decision = last_json(out.stdout)
    assert decision["pipeline"] == "customer_service" and decision["confidence"] > 0.22
    empty = invoke_dsuite("route", " ")
    assert empty.returncode == 2 and "text a user would type" in empty.stderr

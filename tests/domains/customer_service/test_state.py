"""Schemas, value normalisation, the retail tracker, the rule tracker and the DST scores."""

from domains.customer_service.dst_metrics import dst_scores
from domains.customer_service.normalize import normalize_time, normalize_value
from domains.customer_service.retail_tracker import update_retail_state
from domains.customer_service.rule_tracker import RuleTracker, track_dialogue
from domains.customer_service.schema import MULTIWOZ_SLOTS, load_schema
from eval.data import multiwoz


def test_value_normalisation():
    assert normalize_value("Center") == "centre"
    assert normalize_value("moderately priced") == "moderate"
    assert normalize_value("guest house") == "guesthouse"
    assert normalize_time("7pm") == "19:00" and normalize_time("12:30 am") == "00:30"
    assert normalize_time("1730") == "17:30" and normalize_time("12") is None


def test_schemas_validate_states():
    multiwoz_schema = load_schema("multiwoz")
    assert set(multiwoz_schema.slots) == set(MULTIWOZ_SLOTS)
    retail = load_schema("retail")
    assert retail.validate({"retail-order_id": "A1234", "retail-return_reason": "damaged"}) == []
    problems = retail.validate({"retail-return_reason": "bored", "retail-colour": "red"})
    assert len(problems) == 2
    assert retail.clean({"retail-return_reason": "bored", "retail-order_id": "12345"}) == {
        "retail-order_id": "12345"
    }
    sgd_schema = load_schema("sgd")
    assert "Payment_1-amount" in sgd_schema.slots and "RentalCars_3-car_type" in sgd_schema.slots


def test_retail_tracker_keeps_and_overwrites_slots():
    state = update_retail_state({}, "My order 12345678 arrived damaged")
    assert state == {"retail-order_id": "12345678", "retail-return_reason": "damaged"}
    state = update_retail_state(state, "Send the refund by store credit please, my email is ann@shop.example")
    assert state["retail-refund_method"] == "store credit"
    assert state["retail-email"] == "ann@shop.example"
    assert state["retail-order_id"] == "12345678"


def test_rule_tracker_follows_a_taxi_dialogue():
    tracker = RuleTracker()
    state = tracker.update("I would like a taxi from Saint John 's college to Pizza Hut Fen Ditton .")
    assert state == {"taxi-departure": "saint johns college", "taxi-destination": "pizza hut fenditton"}
    state = tracker.update("I want to leave after 17:15 .", "What time do you want to leave ?")
    assert state["taxi-leaveat"] == "17:15"


def test_rule_tracker_scores_in_its_measured_range():
    golds, preds = [], []
    for dialogue in multiwoz.load_dialogues("test", limit=40):
        turns = multiwoz.user_turns(dialogue)
        preds += track_dialogue(turns)
        golds += [{k: v for k, v in t["state"].items() if k in MULTIWOZ_SLOTS} for t in turns]
    scores = dst_scores(golds, preds)
    assert 0.08 < scores["joint_goal_accuracy"] < 0.5
    assert 0.55 < scores["slot_f1"] < 0.9


def test_dst_scores_accept_any_listed_sgd_value():
    golds = [{"Payment_1-receiver": ["Amelia", "amelia"]}, {"Payment_1-amount": ["$50", "50 dollars"]}]
    preds = [{"Payment_1-receiver": "amelia"}, {"Payment_1-amount": "fifty"}]
    scores = dst_scores(golds, preds)
    assert scores["joint_goal_accuracy"] == 0.5
    assert scores["slot_f1"] == 0.5

"""Offer candidates (values the assistant mentioned) and their labelled training records."""

from domains.customer_service.offers import offer_messages, offer_records, offered_values
from domains.customer_service.rule_tracker import RuleTracker
from eval.data import multiwoz


def test_offered_values_come_from_the_assistant_turn_and_leave_the_customers_own_slots_alone():
    tracker = RuleTracker()
    tracker.update("I need a cheap restaurant in the north", "")
    system = "How about Royal Spice? It is an Indian restaurant in the north."
    tracker.update("Sounds great, please book it for 4 people", system)
    offered = offered_values(system, tracker)
    assert offered.get("restaurant-name") == "royal spice"
    assert offered.get("restaurant-food") == "indian"
    assert "restaurant-bookpeople" not in offered  # read from the customer's turn, not offered
    assert offered_values("", tracker) == {}


def test_offer_messages_name_the_slot_and_value():
    messages = offer_messages("How about Cotto ?", "Sounds great !", "restaurant-name", "cotto")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Assistant: How about Cotto?" in messages[1]["content"]
    assert "restaurant name = cotto" in messages[1]["content"]


def test_offer_records_are_labelled_from_the_gold_state_and_balanced():
    dialogues = multiwoz.load_dialogues("dev", limit=60)
    records = offer_records(dialogues, multiwoz.user_turns)
    answers = [r["messages"][-1]["content"] for r in records]
    assert set(answers) == {"yes", "no"} and len(records) > 40
    balanced = offer_records(dialogues, multiwoz.user_turns, limit=40)
    assert len(balanced) == 40
    assert sum(r["messages"][-1]["content"] == "yes" for r in balanced) == 20
    # a "yes" record's value is in the gold state after that turn
    first_yes = next(r for r in records if r["messages"][-1]["content"] == "yes")
    assert " = " in first_yes["messages"][1]["content"]

"""Offer candidates: values the assistant mentioned that the customer may take up."""

from domains.customer_service.offers import offered_values
from domains.customer_service.rule_tracker import RuleTracker


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

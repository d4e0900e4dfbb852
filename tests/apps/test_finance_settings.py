"""The finance tab's handler: changing a setting mid-conversation keeps what the customer said."""

from __future__ import annotations

from apps.finance import ask


def test_a_changed_setting_applies_from_the_next_turn_and_keeps_the_dialog_state():
    history, _, advisor, state, _, _ = ask(
        "I have $5,000 to invest for 10 years.", [], None, draft_with_model=False, retrieve=True
    )
    history, _, changed, state, _, _ = ask(
        "What is an index fund?", history, advisor, draft_with_model=False, retrieve=False
    )
    assert changed is not advisor and not changed.use_retrieval  # the new setting is in force
    assert state["turns"] == 2 and "5000" in str(state) and "10" in str(state), state  # remembered
    assert len(changed.history) == 2
    _, _, same, _, _, _ = ask("And what is a bond?", history, changed, draft_with_model=False, retrieve=False)
    assert same is changed  # unchanged settings: the same advisor

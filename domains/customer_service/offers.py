"""Values the assistant offered that the customer may take up: the ``offer`` candidates of the DST verifier.

The rule tracker reads slot values in what the customer says. A value the assistant proposed ("How about
Cotto?") enters the goal only when the customer accepts it ("Sounds great, book a table for 4"), and no
keyword rule tells that well: on MultiWOZ dev, adopting every offered value lowers the rules' joint goal
accuracy from 0.300 to 0.198, adopting only the right ones would raise it to 0.359. So the candidates come
from the rules' value dictionary run over the assistant's turn, and the customer-service adapter decides
each (:mod:`domains.customer_service.dst_verifier`).
"""

from __future__ import annotations

from domains.customer_service.normalize import normalize_state
from domains.customer_service.rule_tracker import RuleTracker
from domains.customer_service.schema import MULTIWOZ_SLOTS


def offered_values(system: str, tracker: RuleTracker) -> dict[str, str]:
    """Slot values the assistant's turn mentions, read with the domain ``tracker`` has in focus.

    Slots the tracker just read from the customer's own turn are left out: the customer's words win.
    """
    if not system.strip():
        return {}
    probe = RuleTracker()
    probe.active = tracker.active
    found = normalize_state(probe.update(system, ""))
    return {s: v for s, v in found.items() if s in MULTIWOZ_SLOTS and s not in tracker.last_found}

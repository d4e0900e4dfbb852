"""Dialog state for the retail support schema: patterns and value lists from the schema, as data."""

from __future__ import annotations

import re

from domains.customer_service.schema import load_schema

_PATTERNS = {
    "retail-order_id": re.compile(
        r"\b(?:order|purchase|order number|order no\.?|order id|#)\s*(?:number|no\.?|id)?\s*"
        r"#?\s*([A-Za-z]{0,3}-?\d{4,20})\b",
        re.I,
    ),
    "retail-invoice_id": re.compile(
        r"\binvoice\s*(?:number|no\.?|#)?\s*#?\s*([A-Za-z]{0,3}-?\d{3,20})\b", re.I
    ),
    "retail-email": re.compile(r"\b([^@\s]+@[^@\s]+\.[a-z]{2,})\b", re.I),
    "retail-refund_amount": re.compile(
        r"([$€£]\s?\d+(?:[.,]\d{2})?|\d+(?:[.,]\d{2})?\s?(?:dollars|euros|pounds|usd|eur|gbp))", re.I
    ),
    "retail-person_name": re.compile(r"\bmy name is ([A-Z][a-z]+(?: [A-Z][a-z]+)?)"),
    "retail-delivery_city": re.compile(
        r"\b(?:ship|deliver|send)\w* (?:it |them )?to ([A-Z][a-z]+(?: [A-Z][a-z]+)?)"
    ),
}
_BARE_NUMBER = re.compile(r"\b(\d{6,20})\b")


def update_retail_state(state: dict, text: str) -> dict:
    """The new state after the user's ``text``: found values overwrite older ones; schema-checked."""
    schema = load_schema("retail")
    found = {}
    for slot, pattern in _PATTERNS.items():
        match = pattern.search(text)
        if match:
            found[slot] = match.group(1).strip()
    if "retail-order_id" not in found and "retail-invoice_id" not in found:
        bare = _BARE_NUMBER.search(text)
        if bare:
            found["retail-order_id"] = bare.group(1)
    low = text.lower()
    for slot in schema.slots.values():
        if slot.categorical:
            for value in sorted(slot.values, key=len, reverse=True):
                if re.search(rf"\b{re.escape(value)}\b", low):
                    found[slot.name] = value
                    break
    new = dict(state)
    new.update(schema.clean(found))
    return new

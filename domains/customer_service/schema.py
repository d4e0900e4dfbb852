"""Dialog schemas as data: the MultiWOZ 2.2 services, the two SGD services and the project's retail schema.

A ``DialogSchema`` knows its slots (with possible values for categorical ones) and checks a state
(``{slot: value}``) against a JSON Schema built from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from core_model.errors import DSuiteError
from eval.data.paths import PROJECT_DATA, read_json

RETAIL_SCHEMA = PROJECT_DATA / "customer_service" / "schemas" / "retail.json"
# The 30 informable MultiWOZ slots of the five evaluated domains (the usual DST setting).
MULTIWOZ_DOMAINS = ("hotel", "train", "attraction", "restaurant", "taxi")
MULTIWOZ_SLOTS = (
    "hotel-pricerange",
    "hotel-type",
    "hotel-parking",
    "hotel-bookday",
    "hotel-bookpeople",
    "hotel-bookstay",
    "hotel-stars",
    "hotel-internet",
    "hotel-name",
    "hotel-area",
    "train-arriveby",
    "train-departure",
    "train-day",
    "train-bookpeople",
    "train-leaveat",
    "train-destination",
    "attraction-area",
    "attraction-name",
    "attraction-type",
    "restaurant-pricerange",
    "restaurant-area",
    "restaurant-food",
    "restaurant-name",
    "restaurant-bookday",
    "restaurant-bookpeople",
    "restaurant-booktime",
    "taxi-leaveat",
    "taxi-destination",
    "taxi-departure",
    "taxi-arriveby",
)


@dataclass(frozen=True)
class Slot:
    """One slot: ``service-name``, a description and, when categorical, its possible values."""

    name: str
    description: str
    categorical: bool
    values: tuple[str, ...] = ()

    @property
    def service(self) -> str:
        return self.name.split("-", 1)[0]


class DialogSchema:
    """The slots a tracker may fill, with a validator for states."""

    def __init__(self, name: str, slots: list[Slot]):
        self.name = name
        self.slots = {slot.name: slot for slot in slots}

    def json_schema(self) -> dict:
        """A JSON Schema for a state object (categorical values enumerated, ``dontcare`` allowed)."""
        props = {}
        for slot in self.slots.values():
            prop: dict = {"type": "string", "minLength": 1, "description": slot.description}
            if slot.categorical and slot.values:
                prop["enum"] = sorted(set(slot.values) | {"dontcare"})
            props[slot.name] = prop
        return {"type": "object", "properties": props, "additionalProperties": False}

    def validate(self, state: dict) -> list[str]:
        """Problems of ``state`` against the schema (empty list when valid)."""
        import jsonschema

        validator = jsonschema.Draft7Validator(self.json_schema())
        return [
            f"{'/'.join(map(str, e.path)) or '(state)'}: {e.message}" for e in validator.iter_errors(state)
        ]

    def clean(self, state: dict) -> dict:
        """Keep only the slots and values the schema accepts (unknown slots and values dropped)."""
        out = {}
        for slot, value in state.items():
            spec = self.slots.get(slot)
            if spec is None or not isinstance(value, str) or not value:
                continue
            if spec.categorical and spec.values and value not in spec.values and value != "dontcare":
                continue
            out[slot] = value
        return out


def _slots_from_services(
    services: list[dict], keep: set[str] | None = None, prefix_service: bool = False
) -> list[Slot]:
    slots = []
    for service in services:
        for slot in service.get("slots", []):
            name = f"{service['service_name']}-{slot['name']}" if prefix_service else slot["name"]
            if keep is not None and name not in keep:
                continue
            values = tuple(str(v).lower() for v in slot.get("possible_values", []))
            slots.append(Slot(name, slot.get("description", ""), bool(slot.get("is_categorical")), values))
    return slots


@cache
def load_schema(name: str) -> DialogSchema:
    """``multiwoz`` (30 informable slots of the 2.2 schema), ``sgd`` (Payment_1, RentalCars_3) or ``retail``.

    MultiWOZ 2.1 annotations use values outside 2.2's categorical lists (e.g. ``hotel-stars`` ``"0"`` is in,
    ``"4 stars"`` is not), so MultiWOZ slots are validated as strings and normalised, not enumerated.
    """
    if name == "multiwoz":
        from eval.data import multiwoz

        slots = _slots_from_services(multiwoz.schema(), set(MULTIWOZ_SLOTS))
        return DialogSchema(name, [Slot(s.name, s.description, False, s.values) for s in slots])
    if name == "sgd":
        from eval.data import sgd

        return DialogSchema(name, _slots_from_services(sgd.schema(), prefix_service=True))
    if name == "retail":
        data = read_json(RETAIL_SCHEMA)
        return DialogSchema(name, _slots_from_services([data]))
    raise DSuiteError(f"Unknown dialog schema '{name}'; expected multiwoz, sgd or retail.")


def retail_intents() -> list[dict]:
    """The retail schema's intents with their required and optional slots."""
    return list(read_json(RETAIL_SCHEMA)["intents"])

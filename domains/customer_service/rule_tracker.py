"""The baseline dialog state tracker: a value dictionary (schema values plus values seen in MultiWOZ dev
states), regular expressions for times and counts, and cue words from ``dst_rules.json``.

It reads one user turn (and the system turn before it) and updates the state; it knows nothing a
dictionary and a few rules cannot know, which is what the adapter tracker is measured against.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import lru_cache

from domains.customer_service.normalize import normalize_time, normalize_value, synonyms
from domains.customer_service.schema import MULTIWOZ_DOMAINS, MULTIWOZ_SLOTS, load_schema
from eval.data.paths import PROJECT_DATA, read_json

RULES_FILE = PROJECT_DATA / "customer_service" / "dst_rules.json"
_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_SKIP_DICT = {
    "bookpeople",
    "bookstay",
    "stars",
    "bookday",
    "day",
    "leaveat",
    "arriveby",
    "booktime",
    "internet",
    "parking",
}


@lru_cache(maxsize=1)
def rules() -> dict:
    """The cue words and phrase lists of the baseline tracker."""
    return read_json(RULES_FILE)


def clean_text(text: str) -> str:
    """Lower-case, join MultiWOZ's split clitics ("john 's" -> "johns"), drop punctuation."""
    text = text.lower().replace(" 's", "s").replace("'s", "s")
    text = re.sub(r"[^a-z0-9:&' ]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    return f" {text} "


@lru_cache(maxsize=1)
def value_dictionary() -> dict[str, set[str]]:
    """value -> slots it may fill: schema possible values plus every value in MultiWOZ dev states."""
    from eval.data import multiwoz

    table: dict[str, set[str]] = defaultdict(set)
    for slot in load_schema("multiwoz").slots.values():
        for value in slot.values:
            table[value].add(slot.name)
    for dialogue in multiwoz.load_dialogues("dev"):
        for turn in multiwoz.user_turns(dialogue):
            for slot, value in turn["state"].items():
                if slot in MULTIWOZ_SLOTS:
                    table[normalize_value(value)].add(slot)
    for surface, canonical in synonyms().items():
        if canonical in table and len(surface) > 3:
            table[surface] |= table[canonical]
    return {v: s for v, s in table.items() if len(v) >= 3 and v not in ("dontcare", "yes", "no", "none")}


@lru_cache(maxsize=1)
def squashed_values() -> dict[str, str]:
    """Dictionary values keyed without spaces, so ``fen ditton`` finds ``fenditton``."""
    return {value.replace(" ", ""): value for value in sorted(value_dictionary(), key=len)}


def _mentioned_domains(text: str) -> list[str]:
    found = []
    for domain, words in rules()["domain_keywords"].items():
        positions = [text.find(f" {w} ") for w in words if f" {w} " in text]
        if positions:
            found.append((min(positions), domain))
    return [d for _, d in sorted(found)]


def _preceded_by(text: str, start: int, cues: list[str], window: int = 20) -> bool:
    before = text[max(0, start - window) : start + 1]  # up to and including the space before the value
    return any(before.endswith(f" {cue} ") for cue in cues)


class RuleTracker:
    """Stateful baseline tracker over the 30 MultiWOZ informable slots."""

    def __init__(self) -> None:
        self.state: dict[str, str] = {}
        self.active: str | None = None
        self.last_found: dict[str, str] = {}

    def reset(self) -> None:
        self.state, self.active, self.last_found = {}, None, {}

    def _pick(self, slots: set[str], domains: list[str]) -> str | None:
        for domain in domains:
            for slot in sorted(slots):
                if slot.startswith(domain + "-"):
                    return slot
        return None

    def _slot_for(
        self, value: str, slots: set[str], text: str, start: int, order: list[str], found: dict
    ) -> str | None:
        """The slot a dictionary value found at ``start`` fills, from cue words and the domains in focus."""
        slots = {s for s in slots if s.split("-", 1)[1] not in _SKIP_DICT}
        if not slots:
            return None
        if any(s.endswith(("-departure", "-destination")) for s in slots):
            is_dep = _preceded_by(text, start, rules()["departure_cues"])
            is_dest = _preceded_by(text, start, rules()["destination_cues"])
            kind = "departure" if is_dep and not is_dest else "destination" if is_dest else None
            if kind:
                slots = {s for s in slots if s.endswith("-" + kind)} or slots
        slot = self._pick(slots, order) or (self._pick(slots, list(MULTIWOZ_DOMAINS)) if not order else None)
        if slot and slot.endswith(("-departure", "-destination")) and slot in found:
            swap = (
                ("departure", "destination") if slot.endswith("departure") else ("destination", "departure")
            )
            slot = slot.replace(*swap)
        return slot

    def update(self, user: str, system: str = "") -> dict[str, str]:
        """Read one user turn (with the system turn before it) and return the new full state."""
        text, sys_text = clean_text(user), clean_text(system)
        mentioned = _mentioned_domains(text)
        if mentioned:
            self.active = mentioned[0]  # the first domain named is the one the request is about
        order = mentioned + [d for d in ([self.active] if self.active else []) if d not in mentioned]
        order += [d for d in _mentioned_domains(sys_text) if d not in order]
        domain = order[0] if order else None
        found: dict[str, str] = {}
        # 1. dictionary values, longest first
        table, squashed = value_dictionary(), squashed_values()
        words = text.split()
        offsets = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]  # the space before word i
        used = [False] * len(words)
        for n in range(min(7, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                value = squashed.get("".join(words[i : i + n]))
                if value is None or any(used[i : i + n]):
                    continue
                slot = self._slot_for(value, table[value], text, offsets[i], order, found)
                if slot is None:
                    continue
                found[slot] = normalize_value(value)
                used[i : i + n] = [True] * n
        if domain:
            found.update(self._numbers_and_times(text, domain))
            found.update(self._yes_and_dontcare(text, sys_text, domain))
        self.last_found = {k: v for k, v in found.items() if k in MULTIWOZ_SLOTS}
        self.state.update(self.last_found)
        return dict(self.state)

    def _numbers_and_times(self, text: str, domain: str) -> dict[str, str]:
        r = rules()
        out: dict[str, str] = {}
        num = r"(\d+|" + "|".join(_NUMBER_WORDS) + r")"
        people = re.search(num + r" (?:" + "|".join(map(re.escape, r["people_nouns"])) + r")\b", text)
        if people and domain in ("hotel", "restaurant", "train"):
            out[f"{domain}-bookpeople"] = _NUMBER_WORDS.get(people.group(1), people.group(1))
        stay = re.search(num + r" (?:" + "|".join(r["stay_nouns"]) + r")\b", text)
        if stay and domain == "hotel":
            out["hotel-bookstay"] = _NUMBER_WORDS.get(stay.group(1), stay.group(1))
        stars = re.search(num + r" stars?\b", text)
        if stars and domain == "hotel":
            out["hotel-stars"] = _NUMBER_WORDS.get(stars.group(1), stars.group(1))
        day = next((d for d in r["days"] if f" {d} " in text), None)
        if day and domain in ("hotel", "restaurant", "train"):
            out[f"{domain}-{'day' if domain == 'train' else 'bookday'}"] = day
        for match in re.finditer(r"\b(\d{1,2}(?::\d{2})?\s?(?:am|pm)?|\d{1,2}:\d{2})\b", text):
            value = normalize_time(match.group(1))
            if not value:
                continue
            if domain == "restaurant":
                out["restaurant-booktime"] = value
            elif domain in ("train", "taxi"):
                before = text[max(0, match.start() - 25) : match.start()]
                arrive = any(f" {cue} " in before for cue in r["arrive_cues"])
                out[f"{domain}-{'arriveby' if arrive else 'leaveat'}"] = value
        return out

    def _yes_and_dontcare(self, text: str, sys_text: str, domain: str) -> dict[str, str]:
        r = rules()
        out: dict[str, str] = {}
        if domain == "hotel":
            for slot, words in r["yes_slots"].items():
                for word in words:
                    pos = text.find(f" {word} ")
                    if pos >= 0:
                        negated = any(neg in text[max(0, pos - 15) : pos + 1] for neg in r["negations"])
                        out[slot] = "no" if negated else "yes"
                        break
        if any(f" {p} " in text or p in text for p in r["dontcare_phrases"]):
            for slot_name, cues in r["system_slot_cues"].items():
                slot = f"{domain}-{slot_name}"
                if slot in MULTIWOZ_SLOTS and any(cue in sys_text for cue in cues):
                    out[slot] = "dontcare"
        return out


def track_dialogue(turns: list[dict]) -> list[dict]:
    """States after each user turn for ``[{"system", "user"}]`` records (MultiWOZ ``user_turns``)."""
    tracker = RuleTracker()
    return [tracker.update(t["user"], t.get("system", "")) for t in turns]

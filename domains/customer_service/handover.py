"""Requests for a person ("can I speak to a real person?", "get me a representative"), by rules kept as data.

The phrases come from ``data/customer_service/handover.json``: a speaking verb with a person ("talk to
someone", "chat with a live agent"), a transfer ("put me through to an operator"), an ask for one ("I need a
supervisor"), a qualified person on its own ("a real person", "human agent"), or a message that is only the
word ("agent").
Questions about the assistant itself ("are you a real person?", "could you be a live agent") are taken out
before matching, and a phrase after a question or refusal opening ("do I need to speak to a representative
...?", "without talking to anyone") is not a request. The escalation policy hands over on
such a request even when the intent model misses it, and the hub's domain router sends it to customer service.
"""

from __future__ import annotations

import re
from functools import lru_cache

from eval.data.paths import PROJECT_DATA, read_json

HANDOVER_FILE = PROJECT_DATA / "customer_service" / "handover.json"


def _any(words: list[str]) -> str:
    """A regex alternative of ``words``, longest first so that "human agent" wins over "human"."""
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern, re.Pattern, re.Pattern, re.Pattern, re.Pattern]:
    """The request, whole-message, about-the-assistant, not-a-request and ask-verb-then-"to" patterns, built
    from the rules file."""
    rules = read_json(HANDOVER_FILE)
    people, kinds = _any(rules["people"]), _any(rules["kinds"])
    person = rf"(?:{_any(rules['determiners'])} )?(?:{kinds} )?{people}"
    qualified = rf"{kinds} {people}"
    speak = rf"{_any(rules['speak_verbs'])} (?:to|with|through to) {person}"
    objects = _any(rules["transfer_objects"])
    transfer = rf"{_any(rules['transfer_verbs'])} {objects} (?:to|with|through to|over to) {person}"
    asked = _any(rules["ask_people"])
    ask = rf"{_any(rules['ask_verbs'])} (?:to (?:speak|talk) to )?(?:a |an |the |some )?{asked}"
    request = re.compile(rf"\b(?:{speak}|{transfer}|{ask}|{qualified})\b")
    alone = re.compile(rf"^{_any(rules['alone'])}$")
    choice = r"(?:(?:a |an )?\w+ or )?(?:really |actually |even )?"  # "are you a bot or a real person"
    about = re.compile(rf"\b{_any(rules['about_assistant'])} {choice}(?:a |an )?(?:{kinds} )+{people}\b")
    fillers = _any(rules["not_a_request_fillers"])
    not_request = re.compile(rf"\b{_any(rules['not_a_request_before'])} (?:{fillers} ){{0,2}}$")
    ask_to = re.compile(rf"{_any(rules['ask_verbs'])} to ")
    return request, alone, about, not_request, ask_to


def _normalised(text: str) -> str:
    """Lower case, apostrophes kept, other punctuation and runs of spaces as one space."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower().replace("’", "'")).split())


def asks_for_person(text: str) -> str | None:
    """The phrase in which ``text`` asks for a person, or None (also for questions about the assistant)."""
    request, alone, about, not_request, ask_to = _patterns()
    low = about.sub(" ", _normalised(text))
    if alone.match(low):
        return low
    for found in request.finditer(low):
        verb = ask_to.match(found.group(0))  # "need to speak to ...": the opening is read before "speak"
        cut = found.start() + (verb.end() if verb else 0)
        if not not_request.search(low[:cut]):  # "do I need to speak to a representative?"
            return found.group(0)
    return None

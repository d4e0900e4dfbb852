"""The hub's answers from the industry pipelines, for requests the domain router sends to one.

Each function calls its domain's pipeline (``domains.get_domain(name).pipeline``) and returns the answer as
markdown plus one line for the route card. The coder and the advisor answer one message at a time; the support
assistant continues the conversation's support session (its state and escalation count), which the hub
keeps for a while (``SupportSessions``), or replays the conversation's earlier support messages when it no
longer has it. The industry tabs keep whole conversations, code batches and draw charts.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from domains.registry import get_domain

MAX_CODES = 8  # codes listed in the hub; the Medical coding tab shows them all with their evidence
MAX_REPLAYED = 6  # earlier support messages of a hub conversation replayed before the new one
MAX_SESSIONS = 256  # support sessions the hub keeps to continue (least recently used go first)
TABS = {"customer_service": "Customer service", "medical": "Medical coding", "finance": "Finance"}
SOURCES = {  # what the support assistant did, for the route card
    "faq": "FAQ answer",
    "clarify": "asked which request it is",
    "handover": "handed over to a person",
    "small_talk": "small talk",
}


class SupportSessions:
    """The support sessions of the hub's conversations, each kept under the conversation's user messages up to
    and including the last one it answered. A conversation's next support message continues its session
    (taken out, so two pages with the same words never share one); a conversation the hub no longer holds
    (evicted, a server restart, an edited history) is replayed instead. Thread-safe."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self.limit = limit
        self._sessions: OrderedDict[tuple[str, ...], object] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, said: list[str] | tuple[str, ...]):
        """The session that answered the latest support message of a conversation whose user messages so far
        are ``said`` (oldest first), removed from the store; None when the store does not have it."""
        said = _key(said)
        with self._lock:
            for end in range(len(said), 0, -1):  # its last support message may be followed by other requests
                session = self._sessions.pop(said[:end], None)
                if session is not None:
                    return session
        return None

    def keep(self, said: list[str] | tuple[str, ...], session) -> None:
        """Store ``session`` under the conversation's user messages ``said``, up to the one it answered."""
        said = _key(said)
        with self._lock:
            self._sessions[said] = session
            self._sessions.move_to_end(said)
            while len(self._sessions) > self.limit:
                self._sessions.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sessions)


def _key(said: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m.strip() for m in said)


SUPPORT_SESSIONS = SupportSessions()


def new_support_session():
    """A support session as the hub uses it: FAQ answers, questions back and handovers; no generated reply."""
    return get_domain("customer_service").pipeline["session"](generate=False)


def customer_service_answer(
    text: str, earlier: list[str] | tuple[str, ...] = (), session=None
) -> tuple[str, str]:
    """The support assistant's reply (FAQ answer, a question back, or a handover) to ``text``. ``session``:
    the conversation's session to continue (a new one when None); ``earlier``: support messages replayed into
    it first, for a session that has not seen them, so an order number given before fills this answer and
    unanswered turns count towards a handover, as in the Customer service tab."""
    session = session if session is not None else new_support_session()
    resumed = len(session.history)
    for message in earlier[-MAX_REPLAYED:]:
        session.respond(message)
    turn = session.respond(text)
    detail = f"intent `{turn.intent}` at p={turn.confidence:.2f}: {SOURCES.get(turn.source, turn.source)}"
    if turn.escalation is not None:
        detail += f", {turn.escalation.reason.replace('_', ' ')}"
    if resumed:
        detail += f", continuing this conversation's support session ({resumed} earlier message(s))"
    elif earlier:
        detail += f", after {min(len(earlier), MAX_REPLAYED)} earlier support message(s)"
    return turn.reply, detail


def medical_answer(text: str) -> tuple[str, str]:
    """The ICD-10-CM codes of a note (full coder), with their first evidence and what was not coded."""
    result = get_domain("medical").pipeline["code"](text)
    codes = result["codes"]
    lines = []
    for code in codes[:MAX_CODES]:
        evidence = code["evidence"][0]["text"] if code["evidence"] else ""
        flag = "" if code["assertion"] == "present" else f", {code['assertion']}"
        lines.append(f'- **{code["code"]}** {code["description"]}: "{evidence}" ({code["support"]}{flag})')
    if len(codes) > MAX_CODES:
        lines.append(f"- ... and {len(codes) - MAX_CODES} more in the **Medical coding** tab")
    if not lines:
        lines.append("No ICD-10-CM code found in this text.")
    excluded = list(dict.fromkeys(f'"{e["text"]}" ({e["assertion"]})' for e in result["excluded"]))
    if excluded:
        lines.append(f"\nNot coded: {', '.join(excluded)}.")
    return "\n".join(lines), f"{len(codes)} code(s), coder `{result['coder']}`"


def finance_answer(text: str) -> tuple[str, str]:
    """The advisor's answer as the Finance tab gives it by default: the finance adapter's draft kept only
    where its numbers are grounded, the cited figures and terms, the disclaimer."""
    answer = get_domain("finance").pipeline["ask"](text)
    detail = f"answered by {answer.answered_by}"
    if answer.refused:
        detail += f", {answer.refused.replace('_', ' ')}"
    return answer.text, detail


ANSWERS = {"customer_service": customer_service_answer, "medical": medical_answer, "finance": finance_answer}


def pipeline_of_adapter(adapter: str | None) -> str | None:
    """The industry whose adapter ``adapter`` (a registry name) is, or None (a user's own adapter)."""
    if adapter is None:
        return None
    return next((name for name in ANSWERS if get_domain(name).adapter_name == adapter), None)


def pipeline_answer(domain: str, text: str, said: list[str] | None = None, router=None) -> tuple[str, str]:
    """``(answer markdown, card detail)`` of ``domain``'s pipeline for ``text``. The support assistant
    continues the conversation's session (``SUPPORT_SESSIONS``; ``said``: the conversation's earlier user
    messages, oldest first) or, when the hub no longer has it, replays those of ``said`` that ``router``, the
    domain router, sends it; the coder and the advisor answer ``text`` alone."""
    if domain != "customer_service":
        return ANSWERS[domain](text)
    said = list(said or [])
    session = SUPPORT_SESSIONS.take(said)
    replay = session is None and said and router is not None
    earlier = earlier_messages(domain, said, router) if replay else []
    session = session if session is not None else new_support_session()
    answer = customer_service_answer(text, earlier, session)
    SUPPORT_SESSIONS.keep([*said, text], session)
    return answer


def earlier_messages(pipeline: str, user_messages: list[str], router) -> list[str]:
    """The earlier user messages of a conversation that ``router`` (the domain router) sends to ``pipeline``,
    oldest first, at most ``MAX_REPLAYED``."""
    recent = [m for m in user_messages if m.strip()][-MAX_REPLAYED:]
    if not recent:
        return []
    routes = router.route_batch(recent)
    return [m for m, route in zip(recent, routes, strict=True) if route.pipeline == pipeline]

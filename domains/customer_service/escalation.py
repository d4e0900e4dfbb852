"""Escalation to a human: on request (the intent, or a phrase asking for a person), low confidence, repeated
failure, strong negative sentiment."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from domains.customer_service.handover import asks_for_person
from domains.customer_service.intents import IntentPrediction
from domains.customer_service.sentiment import Sentiment
from eval.data.paths import PROJECT_DATA, read_json

ESCALATION_FILE = PROJECT_DATA / "customer_service" / "escalation.json"


@dataclass(frozen=True)
class Escalation:
    """A decision to hand over, with the reason (``requested``, ``low_confidence``, ``repeated_failure``,
    ``negative_sentiment``) and a detail for the agent."""

    reason: str
    detail: str


@lru_cache(maxsize=1)
def policy_settings() -> dict:
    """The escalation settings from ``data/customer_service/escalation.json``."""
    return dict(read_json(ESCALATION_FILE))


def requested(prediction: IntentPrediction, settings: dict | None = None) -> bool:
    """Whether the turn asks for a human: an escalation intent above its probability threshold."""
    settings = settings or policy_settings()
    probs = dict(prediction.top)
    return any(
        probs.get(intent, 0.0) >= settings["intent_threshold"] for intent in settings["escalate_intents"]
    )


@dataclass
class EscalationPolicy:
    """Stateful over a conversation: counts failures in a row."""

    settings: dict = field(default_factory=policy_settings)
    failures: int = 0

    def decide(
        self, prediction: IntentPrediction, sentiment: Sentiment, answered: bool, text: str = ""
    ) -> Escalation | None:
        """The escalation for this turn, or None.

        Args:
            prediction: the turn's intent prediction.
            sentiment: the turn's negativity.
            answered: whether the assistant found an answer (an FAQ or a confident intent).
            text: the customer's message, read for a phrase asking for a person (``handover``) when the
                settings' ``phrases`` is on.
        """
        s = self.settings
        if requested(prediction, s):
            return Escalation("requested", f"intent {prediction.best} (p={prediction.confidence:.2f})")
        phrase = asks_for_person(text) if s.get("phrases", True) and text else None
        if phrase:
            return Escalation("requested", f'asked for a person: "{phrase}"')
        if s.get("sentiment", True) and sentiment.strong:
            return Escalation(
                "negative_sentiment", f"score {sentiment.score:.1f}: {', '.join(sentiment.matches)}"
            )
        if prediction.confidence < s["very_low_confidence"]:
            return Escalation(
                "low_confidence", f"best intent {prediction.best} only p={prediction.confidence:.2f}"
            )
        low = prediction.out_of_scope or prediction.confidence < s["low_confidence"]
        self.failures = self.failures + 1 if (low or not answered) else 0
        if self.failures >= s["max_failures"]:
            return Escalation(
                "repeated_failure", f"{self.failures} turns in a row without a confident answer"
            )
        return None

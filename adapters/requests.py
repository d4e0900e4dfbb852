"""Request and result objects of the adapter manager."""

from __future__ import annotations

from dataclasses import dataclass, field

from core_model.errors import DSuiteError


@dataclass
class GenerationRequest:
    """One generation request.

    Attributes:
        prompt: a plain user prompt (give this or ``messages``).
        messages: a chat message list (``[{"role": "user", "content": ...}, ...]``).
        adapter: ``"name"``, ``"name@3"``, ``"name@stable"``, or ``None`` for the bare base model.
        max_new_tokens: at most this many new tokens.
        temperature: 0 means greedy decoding.
        top_p: nucleus sampling mass when sampling.
        system: an optional system prompt (otherwise the chat template's default).
        min_new_tokens: do not stop before this many tokens (benchmarks use it for fixed-length answers).
        repetition_penalty: > 1 makes tokens already in the prompt or the reply less likely (transformers'
            ``repetition_penalty``: positive logits divided by it, negative ones multiplied); 1 = none.
    """

    prompt: str | None = None
    messages: list[dict] | None = None
    adapter: str | None = None
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 0.9
    system: str | None = None
    min_new_tokens: int = 0
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise DSuiteError("A request needs exactly one of 'prompt' (text) or 'messages' (chat turns).")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise DSuiteError(f"'prompt' must be text, got {type(self.prompt).__name__}.")
        if self.messages is not None and (not isinstance(self.messages, list) or not self.messages):
            raise DSuiteError("'messages' must be a non-empty list of {'role', 'content'} turns.")
        if self.max_new_tokens < 1:
            raise DSuiteError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise DSuiteError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise DSuiteError(f"top_p must be in (0, 1], got {self.top_p}.")
        if not self.repetition_penalty > 0:
            raise DSuiteError(f"repetition_penalty must be > 0 (1 = none), got {self.repetition_penalty}.")

    @property
    def conversation(self) -> str | list[dict]:
        """The prompt text or message list, as the chat formatter takes it."""
        return self.prompt if self.prompt is not None else self.messages

    @classmethod
    def coerce(cls, value: GenerationRequest | dict | str) -> GenerationRequest:
        """Accept a request, a dict of its fields, or a plain prompt string."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(prompt=value)
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(cls.__dataclass_fields__))
            if unknown:
                raise DSuiteError(
                    f"Unknown request fields {unknown}; known: {sorted(cls.__dataclass_fields__)}."
                )
            return cls(**value)
        raise DSuiteError(f"Expected a GenerationRequest, dict or str, got {type(value).__name__}.")


@dataclass
class GenerationResult:
    """What one request produced, and which adapter version produced it."""

    text: str
    adapter: str | None  # resolved "name@version", or None for the bare base
    new_tokens: int
    token_ids: list[int] = field(default_factory=list, repr=False)

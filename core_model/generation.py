"""Text generation on a loaded base: chat formatting, one-shot and streaming generation."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from core_model.base import Base
from core_model.errors import DSuiteError

DEFAULT_SYSTEM: str | None = None  # None keeps the checkpoint chat template's own default system turn
Messages = Sequence[dict]


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 0.9
    repetition_penalty: float = 1.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise DSuiteError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise DSuiteError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise DSuiteError(f"top_p must be in (0, 1], got {self.top_p}.")

    def to_generate_kwargs(self, tokenizer) -> dict:
        kwargs = {
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "pad_token_id": tokenizer.pad_token_id,
        }
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs


def as_messages(prompt: str | Messages, system: str | None = DEFAULT_SYSTEM) -> list[dict]:
    """Turn a plain prompt (or a message list) into a chat message list with a system turn."""
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [dict(m) for m in prompt]
    if system and not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def chat_text(tokenizer, prompt: str | Messages, system: str | None = DEFAULT_SYSTEM) -> str:
    """The prompt text the model sees, via the tokenizer's chat template."""
    messages = as_messages(prompt, system)
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def generate(
    base: Base,
    prompt: str | Messages,
    settings: GenerationSettings | None = None,
    system: str | None = DEFAULT_SYSTEM,
) -> str:
    """Generate a full reply to ``prompt`` with the base model."""
    return "".join(stream(base, prompt, settings, system))


def stream(
    base: Base,
    prompt: str | Messages,
    settings: GenerationSettings | None = None,
    system: str | None = DEFAULT_SYSTEM,
) -> Iterator[str]:
    """Yield the reply to ``prompt`` piece by piece as the model produces it."""
    import torch
    from transformers import TextIteratorStreamer

    settings = settings or GenerationSettings()
    tokenizer = base.tokenizer
    inputs = tokenizer(chat_text(tokenizer, prompt, system), return_tensors="pt")
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with torch.inference_mode():
                base.model.generate(**inputs, streamer=streamer, **settings.to_generate_kwargs(tokenizer))
        except BaseException as exc:  # surfaced to the caller below
            errors.append(exc)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    yield from whole_characters(streamer)
    worker.join()
    if errors:
        raise errors[0]


BROKEN = "\ufffd"  # what decoding gives for a character whose bytes are not all generated yet


def whole_characters(pieces: Iterable[str]) -> Iterator[str]:
    """Streamed text pieces without a broken character at their end: a trailing U+FFFD (an emoji or other
    multi-byte character cut between tokens) is held back until the next piece completes it, and dropped
    when the stream ends there (the token limit cut through it)."""
    held = ""
    for piece in pieces:
        text = held + piece
        whole = text.rstrip(BROKEN)
        held = text[len(whole) :]
        if whole:
            yield whole

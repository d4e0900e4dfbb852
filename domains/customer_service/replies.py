"""The support assistant's generated replies: the fast engine with the system prompt cached, or an adapter.

Without an adapter a reply comes from ``core_model.engine.Engine`` (int8 weights by default), one per base
and precision in the process, shared by every conversation, with the assistant's system prompt in its
prefix cache: a turn computes only the conversation after the system prompt, which is what the first-token
benchmark (``bench/cs_latency.py``) measures. With an adapter the adapter manager serves the reply on the
fp32 base (the engine has no LoRA hooks). Decoding is greedy in both.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from core_model.errors import DSuiteError

PRECISIONS = ("fp32", "int8", "int4")
DEFAULT_PRECISION = "int8"
_ENGINE_LEN = 2048  # tokens per conversation the engine holds (system prompt + last turns + the reply)


class _ReplyEngine:
    """One engine, its lock (its KV cache serves one request at a time) and the cached system prompt."""

    def __init__(self, base: str | None, precision: str, system: str) -> None:
        from core_model import load_base
        from core_model.engine import Engine

        self.engine = Engine.from_base(load_base(base), policy=precision, max_batch=1, max_len=_ENGINE_LEN)
        self.engine.cache_prefix(self.engine.chat_prefix_ids(system))
        self.lock = threading.Lock()

    def reply(self, messages: list[dict], max_new_tokens: int) -> str:
        tokenizer = self.engine.tokenizer
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) + max_new_tokens > self.engine.max_len:
            raise DSuiteError(
                f"The conversation is {len(ids)} tokens; with a {max_new_tokens}-token reply it exceeds the "
                f"{self.engine.max_len} tokens a reply may use. Start a new conversation or shorten the "
                "message."
            )
        with self.lock:
            out = self.engine.generate([ids], max_new_tokens=max_new_tokens)[0]
        return tokenizer.decode(out, skip_special_tokens=True).strip()


def check_precision(precision: str) -> str:
    """``precision`` when the engine has it, else an error that lists the ones it has."""
    if precision not in PRECISIONS:
        raise DSuiteError(f"Reply precision '{precision}' is unknown; use one of {', '.join(PRECISIONS)}.")
    return precision


@lru_cache(maxsize=4)
def reply_engine(base: str | None, precision: str, system: str) -> _ReplyEngine:
    """The shared engine for ``base`` at ``precision`` with ``system`` cached (built on first use)."""
    return _ReplyEngine(base, check_precision(precision), system)


@lru_cache(maxsize=2)
def reply_manager(base: str | None):
    """The adapter manager that serves replies with an adapter (one per base in the process)."""
    from adapters import AdapterManager
    from core_model import load_base

    return AdapterManager(load_base(base))


def write_reply(
    messages: list[dict],
    max_new_tokens: int = 96,
    base: str | None = None,
    adapter: str | None = None,
    precision: str = DEFAULT_PRECISION,
) -> str:
    """The assistant's reply to a chat (``messages`` starts with the system turn).

    Args:
        messages: system turn, earlier turns, the customer's message.
        max_new_tokens: length cap of the reply.
        base: base checkpoint folder (None: the default base).
        adapter: an adapter spec for the reply (``name`` or ``name@version``); None: the engine.
        precision: engine weights when no adapter is named (``fp32``, ``int8``, ``int4``).

    Raises:
        DSuiteError: an unknown adapter or precision, or a conversation too long for the engine.
    """
    if not messages or messages[0].get("role") != "system":
        raise DSuiteError("write_reply needs the chat messages to start with the system turn.")
    if adapter:
        from adapters import GenerationRequest

        request = GenerationRequest(messages=messages, adapter=adapter, max_new_tokens=max_new_tokens)
        return reply_manager(base).generate([request])[0].text.strip()
    return reply_engine(base, precision, messages[0]["content"]).reply(messages, max_new_tokens)

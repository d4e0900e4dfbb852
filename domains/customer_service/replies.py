"""The support assistant's generated replies: the fast engine with the system prompt cached, or an adapter.

Without an adapter a reply comes from ``core_model.engine.Engine`` (int8 weights by default), one per base
and precision in the process, with the assistant's system prompt in its prefix cache: a turn computes only
the conversation after the system prompt, which is what the first-token benchmark (``bench/cs_latency.py``)
measures. Conversations share the engine through a continuous-batching ``Scheduler``: replies written at
the same time decode in one batch. With an adapter the adapter manager serves the reply on the fp32 base
(the engine has no LoRA hooks). Decoding is greedy in both, and both stream: ``stream_reply`` yields the
reply as it grows. Both carry the same repetition penalty (``REPETITION_PENALTY``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from functools import lru_cache

from core_model.errors import DSuiteError

PRECISIONS = ("fp32", "int8", "int4")
DEFAULT_PRECISION = "int8"
_ENGINE_LEN = 2048  # tokens per conversation the engine holds (system prompt + last turns + the reply)
_ENGINE_BATCH = 4  # replies decoded together
_TOKEN_TIMEOUT_S = 120.0  # longest wait for the next token before the reply is given up
# Greedy replies of the 135M base loop ("I'm not a product recommendation service. ... I'm not a product
# recommendation service."): with this penalty 0 of 14 replies to 30-token BANKING77 turns repeated a 6-word
# run, against 8 of 14 without (transformers generate, 96 tokens).
REPETITION_PENALTY = 1.2


class _ReplyEngine:
    """One engine with the system prompt cached, and the scheduler that shares it between conversations."""

    def __init__(self, base: str | None, precision: str, system: str) -> None:
        from core_model import load_base
        from core_model.engine import Engine
        from core_model.scheduler import Scheduler

        loaded = load_base(base)
        self.engine = Engine.from_base(loaded, policy=precision, max_batch=_ENGINE_BATCH, max_len=_ENGINE_LEN)
        self.engine.cache_prefix(self.engine.chat_prefix_ids(system))
        self.scheduler = Scheduler(self.engine)
        self.scheduler.start()

    def stream(self, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
        """The reply text so far, each time it grows by a token."""
        from core_model.generation import BROKEN

        tokenizer = self.engine.tokenizer
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) + max_new_tokens > self.engine.max_len:
            raise DSuiteError(
                f"The conversation is {len(ids)} tokens; with a {max_new_tokens}-token reply it exceeds the "
                f"{self.engine.max_len} tokens a reply may use. Start a new conversation or shorten the "
                "message."
            )
        request = self.scheduler.submit(
            ids, max_new_tokens=max_new_tokens, repetition_penalty=REPETITION_PENALTY
        )
        tokens: list[int] = []
        try:
            for token in request.stream(timeout=_TOKEN_TIMEOUT_S):
                tokens.append(token)
                yield tokenizer.decode(tokens, skip_special_tokens=True).rstrip(BROKEN)  # no half emoji
        finally:  # the reader stopped early (Stop button, closed page): free the slot for other replies
            request.cancel()


def check_precision(precision: str) -> str:
    """``precision`` when the engine has it, else an error that lists the ones it has."""
    if precision not in PRECISIONS:
        raise DSuiteError(f"Reply precision '{precision}' is unknown; use one of {', '.join(PRECISIONS)}.")
    return precision


_ENGINES: OrderedDict[tuple, _ReplyEngine] = OrderedDict()  # least recently used first
_ENGINES_LOCK = threading.Lock()
MAX_ENGINES = 4


def reply_engine(base: str | None, precision: str, system: str) -> _ReplyEngine:
    """The shared engine for ``base`` at ``precision`` with ``system`` cached (built on first use).

    At most ``MAX_ENGINES`` are kept; the least recently used one beyond that is retired: its scheduler
    thread ends once the replies it is writing are finished (a late one restarts it).
    """
    key = (base, check_precision(precision), system)
    with _ENGINES_LOCK:  # held while building, so two conversations never build the same engine twice
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _ReplyEngine(*key)
        _ENGINES.move_to_end(key)
        while len(_ENGINES) > MAX_ENGINES:
            _, retired = _ENGINES.popitem(last=False)
            retired.scheduler.stop_when_idle()
        return engine


@lru_cache(maxsize=2)
def reply_manager(base: str | None):
    """The adapter manager that serves replies with an adapter (one per base in the process)."""
    from adapters import AdapterManager
    from core_model import load_base

    return AdapterManager(load_base(base))


def stream_reply(
    messages: list[dict],
    max_new_tokens: int = 96,
    base: str | None = None,
    adapter: str | None = None,
    precision: str = DEFAULT_PRECISION,
) -> Iterator[str]:
    """The assistant's reply to a chat as it is written: the text so far, once per new token.

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
        raise DSuiteError("A reply needs the chat messages to start with the system turn.")
    if not adapter:
        yield from reply_engine(base, precision, messages[0]["content"]).stream(messages, max_new_tokens)
        return
    from adapters import GenerationRequest

    request = GenerationRequest(
        messages=messages,
        adapter=adapter,
        max_new_tokens=max_new_tokens,
        repetition_penalty=REPETITION_PENALTY,
    )
    text = ""
    for piece in reply_manager(base).stream(request):
        text += piece
        yield text


def write_reply(
    messages: list[dict],
    max_new_tokens: int = 96,
    base: str | None = None,
    adapter: str | None = None,
    precision: str = DEFAULT_PRECISION,
) -> str:
    """The whole reply of :func:`stream_reply` (same arguments), without surrounding white space."""
    versions = list(stream_reply(messages, max_new_tokens, base, adapter, precision))
    return versions[-1].strip() if versions else ""

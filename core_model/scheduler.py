"""Continuous batching: requests join and leave a running decode batch.

``Scheduler(engine)`` keeps live sequences in engine slots ``0..n-1``. Each ``step()`` admits waiting
requests into free slots (prefill, using the engine's prefix cache), runs one batched decode step for all
live sequences, and retires the finished ones, moving the last live slot into the hole so the batch stays
contiguous. A server calls ``start()`` once and ``submit()`` per request; scripts can call
``run_until_idle()`` instead of starting the thread. ``Request.cancel()`` frees a request's slot at the next
step (a client that stopped listening should not keep decoding).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from core_model.engine import Engine
from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)
_END = object()


@dataclass
class Request:
    """One generation request and its results (``tokens`` grows as the scheduler decodes)."""

    ids: list[int]
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop_at_eos: bool = True
    repetition_penalty: float = 1.0
    rid: int = 0
    tokens: list[int] = field(default_factory=list)
    submitted: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished_at: float | None = None
    error: BaseException | None = None
    cancelled: bool = False
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _queue: queue.Queue = field(default_factory=queue.Queue, repr=False)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> list[int]:
        """Block until the request finishes; return its generated token ids."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.rid} did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return list(self.tokens)

    def stream(self, timeout: float | None = None) -> Iterator[int]:
        """Yield generated token ids as they are produced."""
        while True:
            item = self._queue.get(timeout=timeout)
            if item is _END:
                if self.error is not None:
                    raise self.error
                return
            yield item

    def cancel(self) -> None:
        """Stop decoding this request at the scheduler's next step (its slot goes to the next request);
        the tokens produced so far stay in ``tokens``. Does nothing to a finished request."""
        self.cancelled = True

    def _emit(self, token: int) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        self.tokens.append(token)
        self._queue.put(token)

    def _finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.finished_at = time.perf_counter()
        self._queue.put(_END)
        self._done.set()


class Scheduler:
    """Continuous batching over an ``Engine`` (see the module docstring)."""

    def __init__(self, engine: Engine, max_batch: int | None = None) -> None:
        self.engine = engine
        self.max_batch = min(max_batch or engine.max_batch, engine.max_batch)
        self.waiting: deque[Request] = deque()
        self.active: list[Request] = []  # active[i] lives in engine slot i
        self._last: list[int] = []  # last token per active slot
        self._lock = threading.Condition()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stop = False
        self._stop_when_idle = False
        self._looping = False
        self.steps = 0

    def submit(self, ids: Sequence[int], max_new_tokens: int = 128, temperature: float = 0.0,
               top_p: float = 1.0, stop_at_eos: bool = True, repetition_penalty: float = 1.0) -> Request:
        """Queue a prompt (token ids); returns its ``Request`` (use ``result()`` or ``stream()``).

        ``repetition_penalty`` > 1 makes every token already in the prompt or the reply less likely, as
        transformers' ``repetition_penalty`` does (positive logits divided by it, negative ones multiplied).
        """
        ids = [int(i) for i in ids]
        if not ids:
            raise DSuiteError("Cannot submit an empty prompt: give at least one token id.")
        if max_new_tokens < 1:
            raise DSuiteError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
        if repetition_penalty <= 0:
            raise DSuiteError(f"repetition_penalty must be > 0 (1 = none), got {repetition_penalty}.")
        if len(ids) + max_new_tokens > self.engine.max_len:
            raise DSuiteError(
                f"Prompt of {len(ids)} tokens plus {max_new_tokens} new tokens exceeds the engine's "
                f"max_len={self.engine.max_len}; shorten the prompt or lower max_new_tokens."
            )
        request = Request(ids, max_new_tokens, temperature, top_p, stop_at_eos, repetition_penalty,
                          rid=next(self._ids))
        with self._lock:
            self.waiting.append(request)
            self._lock.notify()
            restart = self._stop_when_idle and not self._looping  # a late client of a retired scheduler
        if restart:
            self.start()
        return request

    def _finished(self, request: Request, token: int) -> bool:
        return request.cancelled or len(request.tokens) >= request.max_new_tokens or (
            request.stop_at_eos and token in self.engine.eos_ids
        )

    def _sample(self, logits: torch.Tensor, requests: list[Request]) -> list[int]:
        if any(r.repetition_penalty != 1.0 for r in requests):
            logits = logits.clone()
            for row, request in zip(logits, requests, strict=True):
                if request.repetition_penalty != 1.0:
                    seen = torch.tensor(sorted(set(request.ids) | set(request.tokens)))
                    scores = row[seen]
                    penalty = request.repetition_penalty
                    row[seen] = torch.where(scores > 0, scores / penalty, scores * penalty)
        if all(r.temperature <= 0 for r in requests):
            return logits.argmax(-1).tolist()
        return [
            int(Engine.sample(logits[i:i + 1], r.temperature, r.top_p)[0]) for i, r in enumerate(requests)
        ]

    def _retire(self, slot: int) -> None:
        last = len(self.active) - 1
        if slot != last:
            self.engine.move_slot(last, slot)
            self.active[slot] = self.active[last]
            self._last[slot] = self._last[last]
        self.active.pop()
        self._last.pop()

    def step(self) -> bool:
        """Admit waiting requests, decode one token for every live one, retire finished ones.

        Returns:
            Whether any work was done.
        """
        worked = False
        while len(self.active) < self.max_batch:
            with self._lock:
                if not self.waiting:
                    break
                request = self.waiting.popleft()
            if request.cancelled:
                request._finish()
                continue
            slot = len(self.active)
            try:
                logits = self.engine.prefill(slot, request.ids)
            except Exception as exc:  # a bad request must not stop the others
                request._finish(exc)
                continue
            worked = True
            token = self._sample(logits[None], [request])[0]
            request._emit(token)
            if self._finished(request, token):
                request._finish()
                continue
            self.active.append(request)
            self._last.append(token)
        if not self.active:
            return worked
        logits = self.engine.decode(self._last)
        self.steps += 1
        tokens = self._sample(logits, self.active)
        done = []
        for slot, (request, token) in enumerate(zip(self.active, tokens, strict=True)):
            request._emit(token)
            self._last[slot] = token
            if self._finished(request, token):
                done.append(slot)
        for slot in reversed(done):
            self.active[slot]._finish()
            self._retire(slot)
        return True

    def run_until_idle(self) -> None:
        """Step until no request is waiting or live (for scripts and tests; servers use ``start``)."""
        while self.step():
            pass

    def start(self) -> None:
        """Run the scheduler loop in a background thread (once: a running loop is left as it is)."""
        with self._lock:
            if self._looping:
                return
            self._stop, self._looping = False, True
        self._thread = threading.Thread(target=self._loop, name="dsuite-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background loop (live requests stay where they are)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def stop_when_idle(self) -> None:
        """End the background loop once no request is waiting or live (the live ones finish first); for an
        owner that drops the scheduler while a client may still be reading from it."""
        with self._lock:
            self._stop_when_idle = True
            self._lock.notify_all()

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._stop and not self.waiting and not self.active:
                    if self._stop_when_idle:
                        self._looping = False  # under the lock: a later submit() sees it and restarts
                        return
                    self._lock.wait()
                if self._stop:
                    self._looping = False
                    return
            try:
                self.step()
            except Exception as exc:  # fail every live request loudly rather than hang them
                logger.exception("scheduler step failed")
                for request in self.active:
                    request._finish(exc)
                self.active.clear()
                self._last.clear()

"""The adapter manager: one base in memory, many adapters loaded on demand, mixed-adapter batches.

* Loads adapters from a :class:`~adapters.registry.Registry` on first use (hash and base verified), keeps at
  most ``max_loaded`` of them (least recently used first out; pinned ones stay).
* Every request resolves its adapter spec against the registry folder when it arrives, so an adapter
  registered (or rolled back) by another process is served on the next request without a restart.
* Loaded weights are keyed by ``name@version#hash``: a request in flight keeps the exact version it started
  with; removing or rolling back only affects requests that arrive later.
* ``generate(requests)`` runs rows with different adapters (or the bare base) in one batched forward pass
  per decoding step (see :mod:`adapters.multi_lora`).

Forward passes and adapter loading are serialized by one lock (on a CPU, batching, not threads, gives
throughput); registry writes never wait for it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from adapters.multi_lora import MultiLora
from adapters.registry import AdapterRef, Registry
from adapters.requests import GenerationRequest, GenerationResult
from adapters.shipped import resolve_with_shipped
from core_model.base import Base
from core_model.errors import DSuiteError
from core_model.generation import BROKEN, GenerationSettings, as_messages, whole_characters
from core_model.paths import PROJECT_DATA

logger = logging.getLogger(__name__)


class AdapterManager:
    """Serve a base model with many LoRA adapters from a registry."""

    def __init__(
        self,
        base: Base,
        registry: Registry | None = None,
        *,
        max_loaded: int = 16,
        shipped: Path | None = PROJECT_DATA,
    ) -> None:
        """Attach a manager to a loaded base.

        Args:
            base: from ``core_model.load_base``; the model is not modified (adapters act through hooks).
            registry: where adapters are looked up (default: ``Registry()`` under ``$DSUITE_HOME``).
            max_loaded: at most this many adapters stay in memory (pinned and in-flight ones excepted).
            shipped: where shipped adapters lie (``<domain>/adapter/``, see :mod:`adapters.shipped`): a name
                the registry lacks is installed from there on first request. None: install nothing.
        """
        if max_loaded < 1:
            raise DSuiteError(f"max_loaded must be >= 1, got {max_loaded}.")
        self.base = base
        self.registry = registry if registry is not None else Registry()
        self.max_loaded = max_loaded
        self.shipped = shipped
        self.lora = MultiLora(base.model)
        self._loaded: OrderedDict[str, AdapterRef] = OrderedDict()  # LRU order, key -> ref
        self._bytes: dict[str, int] = {}
        self._pinned: set[str] = set()  # adapter names
        self._in_flight: dict[str, int] = {}
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ adapters
    @staticmethod
    def _key(ref: AdapterRef) -> str:
        return f"{ref.key}#{ref.content_hash.removeprefix('sha256:')[:12]}"

    def resolve(self, spec: str | None) -> AdapterRef | None:
        """The registry version a spec names right now (``None`` stays the bare base).

        A name the registry lacks but the repository ships is installed first (a fresh clone). A bare name
        whose registered versions were all trained for other bases gets the shipped copy as its next
        version, when that copy fits the loaded base (:func:`~adapters.shipped.upgrade_shipped`)."""
        if spec is None:
            return None
        return resolve_with_shipped(self.registry, spec, self.base.fingerprint, self.shipped)

    def add(self, spec: str | AdapterRef) -> AdapterRef:
        """Load an adapter version now (verifying its hash and base); returns its ref."""
        ref = spec if isinstance(spec, AdapterRef) else self.resolve(spec)
        with self._lock:
            self._ensure_loaded(ref)
        return ref

    def _ensure_loaded(self, ref: AdapterRef) -> str:
        key = self._key(ref)
        if key in self._loaded:
            self._loaded.move_to_end(key)
            return key
        _, tensors, config = self.registry.load(ref, self.base.fingerprint)
        self._bytes[key] = self.lora.add(key, tensors, config)
        self._loaded[key] = ref
        logger.info("loaded adapter %s (%.1f MB)", ref.key, self._bytes[key] / 1e6)
        self._evict()
        return key

    def _evict(self) -> None:
        for key in list(self._loaded):
            if len(self._loaded) <= self.max_loaded:
                return
            ref = self._loaded[key]
            if ref.name in self._pinned or self._in_flight.get(key):
                continue
            self._unload(key)
        if len(self._loaded) > self.max_loaded:
            logger.warning(
                "%d adapters loaded (limit %d): the rest are pinned or in use",
                len(self._loaded),
                self.max_loaded,
            )

    def _unload(self, key: str) -> None:
        self.lora.remove(key)
        self._loaded.pop(key, None)
        self._bytes.pop(key, None)
        logger.info("unloaded adapter %s", key)

    def remove(self, spec: str, *, unregister: bool = False) -> list[str]:
        """Unload an adapter (every loaded version of ``name``, or one ``name@version``).

        Requests already running finish on their version. With ``unregister=True`` the version(s) are also
        removed from the registry. Returns the keys unloaded.
        """
        name, _, selector = spec.partition("@")
        version = self.registry.resolve(spec).version if selector else None
        removed = []
        with self._lock:
            for key, ref in list(self._loaded.items()):
                if ref.name == name and (version is None or ref.version == version):
                    if not self._in_flight.get(key):
                        self._unload(key)
                    removed.append(ref.key)
            self._pinned.discard(name) if version is None else None
        if unregister:
            self.registry.remove(spec)
        return removed

    def pin(self, name: str, pinned: bool = True) -> None:
        """Keep every loaded version of adapter ``name`` in memory (``pinned=False`` releases it)."""
        name = name.partition("@")[0]
        with self._lock:
            (self._pinned.add if pinned else self._pinned.discard)(name)

    def loaded(self) -> list[dict]:
        """The adapters in memory, least recently used first, with their size and pin state."""
        with self._lock:
            return [
                {"adapter": ref.key, "bytes": self._bytes[key], "pinned": ref.name in self._pinned}
                for key, ref in self._loaded.items()
            ]

    def _acquire(self, specs: Sequence[str | None]) -> list[str | None]:
        refs = [self.resolve(s) for s in specs]  # reads the registry: sees other processes' changes
        with self._lock:
            keys = [self._ensure_loaded(r) if r is not None else None for r in refs]
            for key in keys:
                if key is not None:
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
                    self._loaded.move_to_end(key)
        return keys

    def _release(self, keys: Sequence[str | None]) -> None:
        with self._lock:
            for key in keys:
                if key is not None:
                    self._in_flight[key] -= 1
                    if not self._in_flight[key]:
                        del self._in_flight[key]
            self._evict()

    def _label(self, key: str | None) -> str | None:
        return key.partition("#")[0] if key else None

    # ------------------------------------------------------------------ generation
    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        tokenizer = self.base.tokenizer
        text = tokenizer.apply_chat_template(
            as_messages(request.conversation, request.system), tokenize=False, add_generation_prompt=True
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, requests: Sequence[GenerationRequest | dict | str]) -> list[GenerationResult]:
        """Answer a batch of requests; rows naming different adapters share each forward pass.

        Requests with the same sampling settings run as one batch; greedy rows give exactly what each
        request gives alone (tested).
        """
        requests = [GenerationRequest.coerce(r) for r in requests]
        if not requests:
            return []
        keys = self._acquire([r.adapter for r in requests])
        try:
            results: list[GenerationResult | None] = [None] * len(requests)
            groups: dict[tuple, list[int]] = {}
            for index, request in enumerate(requests):
                key = (request.temperature, request.top_p, request.repetition_penalty)
                groups.setdefault(key, []).append(index)
            for (temperature, top_p, penalty), indices in groups.items():
                outputs = self._generate_rows(
                    [self._prompt_ids(requests[i]) for i in indices],
                    [keys[i] for i in indices],
                    [requests[i].max_new_tokens for i in indices],
                    temperature,
                    top_p,
                    max(requests[i].min_new_tokens for i in indices),
                    penalty,
                )
                for i, ids in zip(indices, outputs, strict=True):
                    text = self.base.tokenizer.decode(ids, skip_special_tokens=True).rstrip(BROKEN)
                    results[i] = GenerationResult(text, self._label(keys[i]), len(ids), ids)
            return results
        finally:
            self._release(keys)

    def _generate_rows(
        self, prompts, keys, max_new, temperature, top_p, min_new=0, repetition_penalty=1.0
    ) -> list[list[int]]:
        tokenizer = self.base.tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        from adapters.lm import pad_left

        ids, mask = pad_left(prompts, pad)
        settings = GenerationSettings(max(max_new), temperature, top_p, repetition_penalty)
        kwargs = {**settings.to_generate_kwargs(tokenizer), "pad_token_id": pad}
        if min_new:
            kwargs["min_new_tokens"] = min(min_new, max(max_new))
        with self._lock, torch.inference_mode(), self.lora.rows(keys):
            out = self.base.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        rows = []
        eos = {tokenizer.eos_token_id, pad}
        for row, limit in zip(out[:, ids.shape[1] :].tolist(), max_new, strict=True):
            row = row[:limit]
            for cut, token in enumerate(row):
                if token in eos and cut >= min_new:
                    row = row[:cut]
                    break
            rows.append(row)
        return rows

    def stream(self, request: GenerationRequest | dict | str) -> Iterator[str]:
        """Yield the reply to one request piece by piece (the adapter version is fixed when it starts)."""
        from transformers import TextIteratorStreamer

        request = GenerationRequest.coerce(request)
        keys = self._acquire([request.adapter])
        tokenizer = self.base.tokenizer
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                ids = torch.tensor([self._prompt_ids(request)])
                settings = GenerationSettings(
                    request.max_new_tokens, request.temperature, request.top_p, request.repetition_penalty
                )
                kwargs = settings.to_generate_kwargs(tokenizer)
                with self._lock, torch.inference_mode(), self.lora.rows(keys):
                    self.base.model.generate(
                        input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer, **kwargs
                    )
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            yield from whole_characters(streamer)
            worker.join()
            if errors:
                raise errors[0]
        finally:
            worker.join()
            self._release(keys)

    # ------------------------------------------------------------------ scoring
    def score_options(
        self, request: GenerationRequest | dict | str, options: Sequence[str], *, normalize: bool = False
    ) -> list[float]:
        """Log-likelihood of each option as the reply to ``request`` (under its adapter), in one forward pass.

        Args:
            request: the request (its ``adapter`` selects the adapter; generation settings are ignored).
            options: candidate replies, e.g. class labels.
            normalize: divide by the option's token count (mean log-prob per token).

        Returns:
            One score per option; ``argmax`` is the model's choice.
        """
        return self.score_batch([request], [options], normalize=normalize)[0]

    def score_batch(
        self,
        requests: Sequence[GenerationRequest | dict | str],
        options: Sequence[Sequence[str]],
        *,
        normalize: bool = False,
    ) -> list[list[float]]:
        """:meth:`score_options` for several requests (possibly on different adapters) in one forward pass."""
        from adapters.lm import pad_right, target_logprobs

        requests = [GenerationRequest.coerce(r) for r in requests]
        if len(options) != len(requests):
            raise DSuiteError(f"Got {len(requests)} requests but {len(options)} option lists.")
        for opts in options:
            if not opts or not all(isinstance(o, str) and o for o in opts):
                raise DSuiteError(
                    f"Options must be a non-empty list of non-empty strings, got {list(opts)!r}."
                )
        tokenizer = self.base.tokenizer
        keys = self._acquire([r.adapter for r in requests])
        try:
            rows, row_keys, spans = [], [], []
            for request, key, opts in zip(requests, keys, options, strict=True):
                prompt = self._prompt_ids(request)
                for option in opts:
                    option_ids = tokenizer(option, add_special_tokens=False)["input_ids"]
                    spans.append((len(prompt), len(option_ids)))
                    rows.append(prompt + option_ids)
                    row_keys.append(key)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            ids, mask = pad_right(rows, pad)
            targets = torch.zeros_like(mask, dtype=torch.bool)
            for i, (start, length) in enumerate(spans):
                targets[i, start : start + length] = True
            with self._lock, torch.inference_mode(), self.lora.rows(row_keys):
                logprobs, row_index = target_logprobs(self.base.model, ids, mask, targets)
            totals = torch.zeros(len(rows)).index_add_(0, row_index, logprobs)
            scores = [float(totals[i] / (length if normalize else 1)) for i, (_, length) in enumerate(spans)]
            out, at = [], 0
            for opts in options:
                out.append(scores[at : at + len(opts)])
                at += len(opts)
            return out
        finally:
            self._release(keys)

    def first_token_choice(
        self, requests: Sequence[GenerationRequest | dict | str], options: Sequence[str]
    ) -> list[list[float]] | None:
        """Log-probability of each option's first token as the reply's first token, one row per request.

        One forward pass over the prompts only (no option tokens), so it is several times cheaper than
        :meth:`score_batch`. Returns ``None`` when two options share their first token (use ``score_batch``).
        """
        from adapters.lm import decoder_of, head_of, pad_right

        tokenizer = self.base.tokenizer
        firsts = [tokenizer(o, add_special_tokens=False)["input_ids"][:1] for o in options]
        if any(not f for f in firsts) or len({f[0] for f in firsts}) < len(options):
            return None
        requests = [GenerationRequest.coerce(r) for r in requests]
        keys = self._acquire([r.adapter for r in requests])
        try:
            rows = [self._prompt_ids(r) for r in requests]
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            ids, mask = pad_right(rows, pad)
            last = torch.tensor([len(r) - 1 for r in rows])
            with self._lock, torch.inference_mode(), self.lora.rows(keys):
                hidden = decoder_of(self.base.model)(input_ids=ids, attention_mask=mask, use_cache=False)
                hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]
                logits = head_of(self.base.model)(hidden[torch.arange(len(rows)), last]).float()  # (B, V)
            logprobs = torch.log_softmax(logits, dim=-1)[:, [f[0] for f in firsts]]
            return logprobs.tolist()
        finally:
            self._release(keys)

    def close(self) -> None:
        """Unload everything and remove the hooks (the base model is left as it was)."""
        with self._lock:
            self.lora.close()
            self._loaded.clear()
            self._bytes.clear()

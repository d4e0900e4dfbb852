"""Asking a model for an answer, for tasks that only need completions or option scores.

``complete`` generates greedy completions of chat prompts; ``loglik`` scores continuations given a
context; ``choose`` picks the most likely of a few options (often better than free generation for a
135M model); ``token_nll`` gives per-document negative log-likelihoods for perplexity. All of them
take a ``SystemSpec`` and work for the base and for base+adapter (see ``eval.systems``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from core_model.errors import DSuiteError
from eval.registry import SystemSpec
from eval.systems import load_system

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Choice:
    """The option ``choose`` picked, with the score of every option (higher is more likely)."""

    index: int
    option: str
    scores: list[float]


def chat_prompt(tokenizer, prompt: str, system_prompt: str | None = None) -> str:
    """The text the model sees for a user ``prompt``: the chat template with the generation prompt."""
    from core_model.generation import chat_text

    return chat_text(tokenizer, prompt, system_prompt)


def _check_finite(logits, system: SystemSpec) -> None:
    """Refuse NaN/inf logits: a broken model must not turn into a NaN metric silently."""
    import torch

    if not torch.isfinite(logits).all():
        raise DSuiteError(
            f"The model of system '{system.label}' produced non-finite logits (NaN or inf). Check the base "
            "checkpoint and its settings (`dsuite base check`), or the adapter's weights."
        )


def complete(
    system: SystemSpec,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    system_prompt: str | None = None,
    chat: bool = True,
    batch_size: int = 8,
) -> list[str]:
    """Greedy completions of ``prompts`` (batched; deterministic).

    A model the generation engine runs (full attention, every expert active: the shipped base, merged
    adapters) generates through ``core_model.engine`` at fp32: no padding, and a finished row leaves the
    batch. Other settings (sliding/hybrid attention, top-k experts) use ``generate()`` on left-padded
    batches. Both give the model's greedy tokens.

    Args:
        system: the base or base+adapter to ask.
        prompts: user messages (or raw texts when ``chat`` is False).
        max_new_tokens: most tokens generated per prompt.
        system_prompt: an optional system turn for the chat template.
        chat: wrap each prompt in the chat template.
        batch_size: prompts per batch.

    Returns:
        One completion per prompt, special tokens removed and whitespace stripped.
    """
    if max_new_tokens < 1:
        raise DSuiteError(f"complete: max_new_tokens must be at least 1, got {max_new_tokens}.")
    if batch_size < 1:
        raise DSuiteError(f"complete: batch_size must be at least 1, got {batch_size}.")
    loaded = load_system(system)
    tok = loaded.tokenizer
    texts = [chat_prompt(tok, p, system_prompt) if chat else p for p in prompts]
    if not texts:
        return []
    ids = [tok(t)["input_ids"] for t in texts]
    outputs: list[str] = []
    with loaded.lock:  # the system's engine (its KV cache) serves one generate() at a time
        engine = _engine_for(loaded, min(batch_size, len(ids)), max(len(i) for i in ids) + max_new_tokens)
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            if engine is not None:
                new_tokens = engine.generate(chunk, max_new_tokens=max_new_tokens)
            else:
                new_tokens = _generate_padded(loaded, chunk, max_new_tokens)
            outputs.extend(t.strip() for t in tok.batch_decode(new_tokens, skip_special_tokens=True))
    return outputs


ENGINE_LEN_STEP = 512  # engine KV caches are sized in steps of this many tokens (fewer rebuilds)


def _engine_for(loaded, max_batch: int, max_len: int):
    """The fp32 generation engine of a loaded system, big enough for the batch (None: it cannot run it)."""
    from core_model.engine import Engine

    engine = loaded.engine
    if engine is not None and engine.max_batch >= max_batch and engine.max_len >= max_len:
        return engine
    if loaded.engine_unsupported:
        return None
    limit = getattr(loaded.model.config, "max_position_embeddings", None) or max_len
    if max_len > limit:
        return None  # the model's own generate() says what is wrong with a too-long prompt
    size = min(limit, -(-max_len // ENGINE_LEN_STEP) * ENGINE_LEN_STEP)
    if engine is not None:
        max_batch, size = max(max_batch, engine.max_batch), max(size, engine.max_len)
    try:
        loaded.engine = Engine(
            loaded.model, loaded.tokenizer, policy="fp32", max_batch=max_batch, max_len=size
        )
    except DSuiteError as exc:  # sliding/hybrid attention, top-k experts: the model's own forward
        logger.info("complete: generating with the model's own generate() (%s)", exc)
        loaded.engine_unsupported = True
        return None
    return loaded.engine


def _generate_padded(loaded, chunk: list[list[int]], max_new_tokens: int) -> list[list[int]]:
    """New token ids of ``generate()`` on a left-padded batch (the finished rows keep padding along)."""
    import torch

    tok = loaded.tokenizer
    width = max(len(i) for i in chunk)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    input_ids = torch.tensor([[pad] * (width - len(i)) + i for i in chunk])  # (B, T)
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in chunk])  # (B, T)
    with torch.inference_mode():
        generated = loaded.model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=pad,
        )
    return generated[:, width:].tolist()  # (B, new)


def loglik(
    system: SystemSpec, contexts: Sequence[str], continuations: Sequence[str], batch_size: int = 8
) -> list[tuple[float, int]]:
    """Log-likelihood of each continuation given its context.

    The pair is tokenized as one string; the continuation's tokens are those after the context's own
    tokens (lm-evaluation-harness style), so a context ending in a space still scores sensibly.

    Returns:
        Per pair ``(sum of log-probabilities, number of continuation tokens)``.
    """
    import torch

    if len(contexts) != len(continuations):
        raise DSuiteError(
            f"loglik: got {len(contexts)} contexts and {len(continuations)} continuations; expected pairs."
        )
    loaded = load_system(system)
    tok = loaded.tokenizer
    encoded = []
    for context, continuation in zip(contexts, continuations, strict=True):
        ctx_ids = tok(context, add_special_tokens=False)["input_ids"]
        full_ids = tok(context + continuation, add_special_tokens=False)["input_ids"]
        n_cont = max(1, len(full_ids) - len(ctx_ids))
        if len(full_ids) < 2:
            raise DSuiteError(
                f"loglik: context+continuation {context + continuation!r} is shorter than 2 tokens."
            )
        encoded.append((full_ids, min(n_cont, len(full_ids) - 1)))
    results: list[tuple[float, int]] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(ids) for ids, _ in chunk)
        pad = tok.pad_token_id or 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in chunk])  # (B, T)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in chunk])  # (B, T)
        with torch.inference_mode():
            logits = loaded.model(input_ids=input_ids, attention_mask=mask).logits.float()  # (B, T, V)
        _check_finite(logits, system)
        logprobs = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, T-1, V) predicts tokens 1..T-1
        targets = input_ids[:, 1:]  # (B, T-1)
        token_lp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
        for row, (ids, n_cont) in enumerate(chunk):
            end = len(ids) - 1
            results.append((float(token_lp[row, end - n_cont : end].sum()), n_cont))
    return results


def choose(
    system: SystemSpec,
    prompt: str,
    options: Sequence[str],
    system_prompt: str | None = None,
    normalize: bool = True,
) -> Choice:
    """Pick the option the model finds most likely as the answer to a chat ``prompt``.

    Args:
        system: the base or base+adapter to ask.
        prompt: the user message; options are scored as the assistant's reply.
        options: candidate answers (at least two).
        system_prompt: an optional system turn.
        normalize: score by mean log-probability per token (fair to long options) instead of the sum.
    """
    if len(options) < 2:
        raise DSuiteError(f"choose: got {len(options)} option(s); expected at least two to choose from.")
    tok = load_system(system).tokenizer
    context = chat_prompt(tok, prompt, system_prompt)
    scored = loglik(system, [context] * len(options), list(options))
    scores = [lp / n if normalize else lp for lp, n in scored]
    best = max(range(len(options)), key=lambda i: (scores[i], -i))
    return Choice(index=best, option=options[best], scores=scores)


def token_nll(
    system: SystemSpec, texts: Sequence[str], max_tokens: int = 256, batch_size: int = 4
) -> list[tuple[float, int]]:
    """Summed negative log-likelihood of each text's first ``max_tokens`` tokens (for perplexity).

    Returns:
        Per text ``(nll sum in nats, number of predicted tokens)``; the first token is context only.
    """
    import torch

    loaded = load_system(system)
    tok = loaded.tokenizer
    results: list[tuple[float, int]] = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        ids = [tok(t, add_special_tokens=False)["input_ids"][:max_tokens] for t in chunk]
        if any(len(i) < 2 for i in ids):
            raise DSuiteError("token_nll: every text must have at least 2 tokens; drop empty texts first.")
        width = max(len(i) for i in ids)
        pad = tok.pad_token_id or 0
        input_ids = torch.tensor([i + [pad] * (width - len(i)) for i in ids])  # (B, T)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])  # (B, T)
        with torch.inference_mode():
            logits = loaded.model(input_ids=input_ids, attention_mask=mask).logits.float()  # (B, T, V)
        _check_finite(logits, system)
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none"
        )  # (B, T-1)
        nll = nll * mask[:, 1:]
        for row, i in enumerate(ids):
            results.append((float(nll[row].sum()), len(i) - 1))
    return results

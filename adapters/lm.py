"""Language-model helpers shared by training and scoring: log-probabilities only where they are needed.

The tied 49k-word output head dominates a small model's cost, so the backbone runs on every token but the
head only on the positions whose next token is scored (the completion tokens).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch


@contextmanager
def peft_quietly() -> Iterator[None]:
    """Wrap a model with peft (``get_peft_model``, ``PeftModel.from_pretrained``) without the FutureWarning
    about ``is_gradient_checkpointing`` that peft's own attribute check draws from transformers 5 each time:
    nothing a user could change, printed on every training run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def with_lora(model: torch.nn.Module, lora_config) -> torch.nn.Module:
    """``peft.get_peft_model(model, lora_config)``, quietly (:func:`peft_quietly`)."""
    from peft import get_peft_model

    with peft_quietly():
        return get_peft_model(model, lora_config)


def decoder_of(model: torch.nn.Module) -> torch.nn.Module:
    """The backbone of a causal LM (the part before the output head), peft-wrapped or not."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if hasattr(inner, "get_decoder"):
        decoder = inner.get_decoder()
        if decoder is not None:
            return decoder
    return inner.model


def head_of(model: torch.nn.Module) -> torch.nn.Module:
    """The output head (hidden -> vocabulary logits)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.get_output_embeddings()


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask, both (B, T)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def pad_left(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and attention mask, both (B, T) (for generation)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def target_logprobs(
    model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the target tokens only.

    Args:
        model: a causal LM.
        ids: (B, T) token ids.
        mask: (B, T) attention mask.
        targets: (B, T) bool, True where the token at that position is scored (never position 0).

    Returns:
        (log-probs (N,), row index of each (N,)) over the N target positions, in row-major order.
    """
    hidden = decoder_of(model)(input_ids=ids, attention_mask=mask, use_cache=False)
    hidden = hidden.last_hidden_state if hasattr(hidden, "last_hidden_state") else hidden[0]  # (B, T, H)
    select = targets[:, 1:]  # token t is predicted from position t-1
    picked = hidden[:, :-1][select]  # (N, H)
    logits = head_of(model)(picked).float()  # (N, V)
    gold = ids[:, 1:][select]  # (N,)
    logprobs = torch.log_softmax(logits, dim=-1).gather(1, gold[:, None]).squeeze(1)
    rows = torch.arange(ids.shape[0], device=ids.device)[:, None].expand_as(select)[select]
    return logprobs, rows

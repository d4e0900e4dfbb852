"""Fixtures of the adapters tests: a tiny randomly initialised Llama base with the real tokenizer."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
import torch


def random_lora(base, seed: int, rank: int = 4, targets=("q_proj", "v_proj"), scale: float = 0.5):
    """peft-format LoRA tensors with non-zero A and B (so every adapter visibly changes the output)."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in base.model.named_modules():
        if name.split(".")[-1] in targets:
            out_f, in_f = module.weight.shape
            tensors[f"base_model.model.{name}.lora_A.weight"] = torch.randn(rank, in_f, generator=gen) * scale
            tensors[f"base_model.model.{name}.lora_B.weight"] = (
                torch.randn(out_f, rank, generator=gen) * scale
            )
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 2 * rank,
        "target_modules": list(targets),
        "task_type": "CAUSAL_LM",
    }
    return tensors, config


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A 2-layer Llama (random weights, seed 0) with the embedded base's tokenizer, saved as a checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from core_model.base import Base, resolve_base_path
    from core_model.fingerprint import fingerprint

    # the tokenizer files alone (the base folder's config may name an architecture that needs core_model)
    tok_dir = Path(tmp_path_factory.mktemp("tiny_tokenizer"))
    for item in resolve_base_path(None).iterdir():
        if item.is_file() and (
            "token" in item.name or "chat_template" in item.name or "special" in item.name
        ):
            shutil.copy(item, tok_dir / item.name)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    folder = Path(tmp_path_factory.mktemp("tiny_base"))
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return Base(model=model, tokenizer=tokenizer, fingerprint=fingerprint(folder), path=folder, name="tiny")


@pytest.fixture
def registry(tmp_path):
    from adapters.registry import Registry

    return Registry(tmp_path / "registry")


@contextlib.contextmanager
def crash_after_first_checkpoint(monkeypatch):
    """Within the block, training stops with KeyboardInterrupt right after writing its first checkpoint
    (a run killed mid-way, with its checkpoint on disk)."""
    import adapters.train as train_module

    real_save = train_module.save_checkpoint

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            yield
    finally:
        monkeypatch.setattr(train_module, "save_checkpoint", real_save)

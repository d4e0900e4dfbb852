"""Describe a cached base without building the PyTorch model: config, weights, tokenizer, fingerprint.

``dsuite base info`` uses this: it reads every weight tensor and the tokenizer, so a truncated or unreadable
checkpoint is reported, but it skips importing transformers' modelling stack, which alone takes several
seconds on a small CPU. ``dsuite base info --load`` builds the model as the apps do (``load_base``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from core_model.errors import BaseModelError
from core_model.fingerprint import fingerprint


def describe_base(folder: Path) -> dict:
    """A JSON-able description of the checkpoint in ``folder``, with the seconds it took to read it.

    Raises:
        BaseModelError: the config, a weight file or the tokenizer cannot be read.
    """
    from safetensors import safe_open
    from tokenizers import Tokenizer

    start = time.perf_counter()
    weight_files = sorted(folder.glob("*.safetensors"))
    if not weight_files:
        raise BaseModelError(
            f"No *.safetensors weights in '{folder}'; rebuild with `dsuite base prepare --force`."
        )
    parameters, dtypes = 0, set()
    try:
        config = json.loads((folder / "config.json").read_text())
        for weight_file in weight_files:
            with safe_open(weight_file, framework="numpy") as handle:
                for name in handle.keys():
                    tensor = handle.get_tensor(name)
                    parameters += tensor.size
                    dtypes.add(str(tensor.dtype))
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # noqa: BLE001  (safetensors and tokenizers raise their own exception types)
        raise BaseModelError(
            f"Could not read the base in '{folder}': {exc}. Rebuild it with "
            f"`dsuite base prepare --force`, or pass --base with a folder holding config.json, "
            f"*.safetensors and tokenizer.json."
        ) from exc
    record = {
        "path": str(folder),
        "fingerprint": fingerprint(folder),
        "name": folder.name,
        "architecture": (config.get("architectures") or ["?"])[0],
        "model_type": config.get("model_type"),
        "parameters": parameters,
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "num_attention_heads": config.get("num_attention_heads"),
        "num_key_value_heads": config.get("num_key_value_heads"),
        "vocab_size": config.get("vocab_size"),
        "tokenizer_vocab": tokenizer.get_vocab_size(),
        "max_position_embeddings": config.get("max_position_embeddings"),
        "dtype": ",".join(sorted(dtypes)),
        "calibrated": (folder / "calibration").is_dir(),
    }
    record["read_seconds"] = round(time.perf_counter() - start, 3)
    return record

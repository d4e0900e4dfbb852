"""Quantize a model's linear layers in place according to a per-layer precision policy."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from torch import nn
from tqdm.auto import tqdm

from core_model.errors import DSuiteError
from core_model.quant.linear import QuantLinear
from core_model.quant.policy import Policy, layer_index, parse_policy

logger = logging.getLogger(__name__)

MIN_OUT_FEATURES = 64  # smaller linears (MoE routers, attention gates) stay fp32: tiny and routing-sensitive


@dataclass
class QuantReport:
    """What ``quantize_model`` did: layers per precision and the bytes of the model's tensors."""

    policy: str
    layers: dict[str, int] = field(default_factory=dict)  # precision -> number of linear layers
    model_bytes: int = 0

    def to_dict(self) -> dict:
        mb = round(self.model_bytes / 1e6, 1)
        return {"policy": self.policy, "layers": dict(self.layers), "model_mb": mb}


def model_nbytes(model: nn.Module) -> int:
    """Bytes of all distinct parameters and buffers (tied weights counted once)."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        key = tensor.data_ptr()
        if key not in seen:
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


def quantize_model(model: nn.Module, policy: str | Policy, progress: bool = False) -> QuantReport:
    """Replace the model's ``nn.Linear`` layers by ``QuantLinear`` as the policy says (in place).

    Args:
        model: a causal LM (Hugging Face module names: ``model.layers.N.self_attn.q_proj``, ``lm_head``...).
        policy: a policy string or preset name (see ``core_model.quant.policy``), or a parsed ``Policy``.
        progress: show a progress bar.

    Returns:
        A ``QuantReport`` with the layer counts per precision and the resulting model size.

    Raises:
        DSuiteError: the policy is malformed or names blocks the model does not have.
    """
    parsed = policy if isinstance(policy, Policy) else parse_policy(policy)
    num_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    if num_layers is not None:
        parsed.check_layers(int(num_layers))
    targets = [
        (name, module)
        for name, module in model.named_modules()
        if type(module) is nn.Linear
        and module.in_features % 32 == 0
        and module.out_features >= MIN_OUT_FEATURES
        and (layer_index(name) is not None or name.endswith("lm_head"))
    ]
    counts: Counter[str] = Counter()
    for name, module in tqdm(targets, desc=f"quantizing ({parsed.text})", disable=not progress, unit="layer"):
        precision, group_size = parsed.precision_for(name)
        counts[precision] += 1
        if precision == "fp32":
            continue
        if precision == "int4" and module.in_features % group_size:
            raise DSuiteError(
                f"Layer {name} has {module.in_features} inputs, not a multiple of the int4 group size "
                f"{group_size} in policy '{parsed.text}'. Use a group size dividing {module.in_features}."
            )
        _set_module(model, name, QuantLinear.from_linear(module, precision, group_size))
        if name.endswith("lm_head") and getattr(model, "config", None) is not None:
            model.config.tie_word_embeddings = False  # the head now has its own (quantized) storage
    report = QuantReport(policy=parsed.text, layers=dict(counts), model_bytes=model_nbytes(model))
    logger.info("quantized model: %s", report.to_dict())
    return report


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)

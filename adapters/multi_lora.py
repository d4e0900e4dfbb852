"""Per-row LoRA on a frozen base, for batches whose rows use different adapters (or none).

Adapters are applied by forward hooks on the base's Linear modules, so the base model itself is not
changed: outside :meth:`MultiLora.rows` the hooks return at once and the model is the plain base (other
users of the same in-memory base see no adapter). Inside ``rows(keys)``, row ``i`` of every batch gets
adapter ``keys[i]``:

* all rows on one adapter: ``y += (x @ A.T) @ (s·B).T`` (two small matmuls);
* a mix: the rows' LoRA factors are gathered into per-row stacks once per call (rows on the bare base or
  on an adapter that does not touch this module get zeros) and applied with two batched matmuls, so the cost
  does not grow with the number of distinct adapters in the batch (the BGMV idea of Punica / S-LoRA).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

_PLAN: contextvars.ContextVar[_Plan | None] = contextvars.ContextVar("dsuite_lora_plan", default=None)
_PREFIXES = ("base_model.model.",)


@dataclass
class _Factors:
    a: torch.Tensor  # (r, in)
    b: torch.Tensor  # (out, r), already multiplied by the LoRA scaling


@dataclass
class _Plan:
    owner: int  # id of the MultiLora whose hooks apply this plan (several managers may share one base)
    keys: tuple[str | None, ...]
    uniform: str | None  # the one key when every row uses it
    is_uniform: bool
    stacks: dict = field(
        default_factory=dict
    )  # module name -> (A_rows (B, r, in), B_rows (B, out, r)) or None


def parse_peft_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Group peft LoRA tensors by module: ``{"model.layers.0.self_attn.q_proj": {"A": ..., "B": ...}}``."""
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        name = key
        for prefix in _PREFIXES:
            name = name.removeprefix(prefix)
        for part, tag in ((".lora_A.weight", "A"), (".lora_B.weight", "B")):
            if name.endswith(part):
                grouped.setdefault(name[: -len(part)], {})[tag] = value
                break
        else:
            raise DSuiteError(
                f"Unsupported tensor '{key}' in a LoRA adapter: only lora_A/lora_B weights are served "
                "(no biases, DoRA magnitudes or embedding adapters)."
            )
    for module, parts in grouped.items():
        if set(parts) != {"A", "B"}:
            raise DSuiteError(f"LoRA module '{module}' has {sorted(parts)} but needs both lora_A and lora_B.")
    return grouped


def lora_scaling(config: dict, module: str) -> float:
    """The factor peft applies to one module's update (``alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA)."""
    suffix_r = {k: v for k, v in (config.get("rank_pattern") or {}).items() if module.endswith(k)}
    suffix_a = {k: v for k, v in (config.get("alpha_pattern") or {}).items() if module.endswith(k)}
    r = next(iter(suffix_r.values()), config.get("r", 8))
    alpha = next(iter(suffix_a.values()), config.get("lora_alpha", r))
    return alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r


def linear_shapes(modules) -> dict[str, tuple[int, ...]]:
    """``(out_features, in_features)`` of the modules with a 2-D weight, by name, from ``(name, module)``
    pairs (a loaded model's or a meta-device skeleton's ``named_modules()``)."""
    return {
        name: tuple(module.weight.shape)
        for name, module in modules
        if isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2
    }


def check_lora_fits(
    key: str,
    tensors: dict[str, torch.Tensor],
    config: dict,
    shapes: dict[str, tuple[int, ...]],
    architecture: str,
) -> dict[str, dict[str, torch.Tensor]]:
    """Check that a LoRA adapter can be served on a base; returns its tensors grouped by module.

    Args:
        key: the adapter's name, for messages.
        tensors: its tensors in peft's key format.
        config: its peft adapter config.
        shapes: ``(out_features, in_features)`` of every Linear module of the base, by module name (from a
            loaded model or a meta-device skeleton built from the base's config).
        architecture: the base's class name, for messages.

    Raises:
        DSuiteError: not a servable LoRA (DoRA, other peft types, unsupported tensors), a module the base
            lacks, or shapes that do not fit.
    """
    if config.get("peft_type", "LORA") != "LORA":
        raise DSuiteError(f"Adapter {key} is a {config.get('peft_type')} adapter; only LoRA is served.")
    if config.get("use_dora") or config.get("fan_in_fan_out"):
        raise DSuiteError(f"Adapter {key} uses DoRA or fan_in_fan_out, which the manager does not serve.")
    grouped = parse_peft_tensors(tensors)
    for module_name, parts in grouped.items():
        shape = shapes.get(module_name)
        if shape is None or len(shape) != 2:
            raise DSuiteError(
                f"Adapter {key} targets '{module_name}', which is not a Linear module of this base "
                f"({architecture}). Was it trained on another architecture?"
            )
        a, b = parts["A"], parts["B"]
        out_features, in_features = shape
        fits = a.dim() == 2 and b.dim() == 2 and a.shape[0] == b.shape[1]
        if not fits or a.shape[1] != in_features or b.shape[0] != out_features:
            raise DSuiteError(
                f"Adapter {key}: LoRA shapes A{tuple(a.shape)} B{tuple(b.shape)} do not fit "
                f"'{module_name}' of shape {tuple(shape)}."
            )
    return grouped


class MultiLora:
    """Holds loaded adapters' factors and applies them per row through forward hooks on a base model."""

    def __init__(self, model: torch.nn.Module) -> None:
        """Attach to ``model`` (no hook is installed until an adapter needs one)."""
        self.model = model
        self._modules = dict(model.named_modules())
        self._hooks: dict[str, object] = {}
        self.adapters: dict[str, dict[str, _Factors]] = {}

    def add(self, key: str, tensors: dict[str, torch.Tensor], config: dict) -> int:
        """Load an adapter's factors under ``key``; returns the bytes they occupy.

        Raises:
            DSuiteError: the adapter targets a module the base lacks, or shapes do not match.
        """
        shapes = linear_shapes(self._modules.items())
        grouped = check_lora_fits(key, tensors, config, shapes, type(self.model).__name__)
        factors: dict[str, _Factors] = {}
        size = 0
        for module_name, parts in grouped.items():
            weight = self._modules[module_name].weight
            a, b = parts["A"], parts["B"]
            scale = lora_scaling(config, module_name)
            factors[module_name] = _Factors(
                a.to(weight.dtype).contiguous(), (b.to(torch.float32) * scale).to(weight.dtype).contiguous()
            )
            size += (a.numel() + b.numel()) * weight.element_size()
        for module_name in factors:
            if module_name not in self._hooks:
                self._hooks[module_name] = self._modules[module_name].register_forward_hook(
                    self._hook(module_name)
                )
        self.adapters[key] = factors
        return size

    def remove(self, key: str) -> None:
        """Forget an adapter's factors (hooks stay; they are no-ops for modules nobody adapts)."""
        self.adapters.pop(key, None)

    def close(self) -> None:
        """Remove every hook: the model is the plain base again."""
        for handle in self._hooks.values():
            handle.remove()
        self._hooks.clear()
        self.adapters.clear()

    @contextlib.contextmanager
    def rows(self, keys: Sequence[str | None]):
        """Within this block, row ``i`` of every forward pass uses adapter ``keys[i]`` (``None``: base)."""
        keys = tuple(keys)
        unknown = sorted({k for k in keys if k is not None and k not in self.adapters})
        if unknown:
            raise DSuiteError(f"Adapters {unknown} are not loaded; loaded: {sorted(self.adapters)}.")
        distinct = set(keys)
        uniform = next(iter(distinct)) if len(distinct) == 1 else None
        token = _PLAN.set(_Plan(id(self), keys, uniform, len(distinct) == 1))
        try:
            yield
        finally:
            _PLAN.reset(token)

    def _hook(self, module_name: str):
        def hook(module, args, output):
            plan = _PLAN.get()
            if plan is None or plan.owner != id(self):
                return None
            x = args[0]
            if plan.is_uniform:
                factors = self.adapters.get(plan.uniform, {}).get(module_name) if plan.uniform else None
                if factors is None:
                    return None
                return output + (x @ factors.a.T) @ factors.b.T
            stacks = plan.stacks.get(module_name, False)
            if stacks is False:
                stacks = plan.stacks[module_name] = self._stack(plan.keys, module_name, module.weight)
            if stacks is None:
                return None
            a_rows, b_rows = stacks  # (B, r, in), (B, out, r)
            if x.dim() != 3 or x.shape[0] != a_rows.shape[0]:
                raise DSuiteError(
                    f"Module '{module_name}' got input {tuple(x.shape)} in a mixed-adapter batch "
                    f"of {a_rows.shape[0]} rows; per-row LoRA needs (batch, tokens, features) inputs "
                    "(attention and dense MLP projections, not routed expert projections)."
                )
            # (B, T, in) @ (B, in, r) -> (B, T, r); @ (B, r, out) -> (B, T, out)
            return output + torch.bmm(torch.bmm(x, a_rows.transpose(1, 2)), b_rows.transpose(1, 2))

        return hook

    def _stack(self, keys: tuple, module_name: str, weight: torch.Tensor):
        per_row = [self.adapters[k].get(module_name) if k is not None else None for k in keys]
        present = [f for f in per_row if f is not None]
        if not present:
            return None
        rank = max(f.a.shape[0] for f in present)
        out_features, in_features = weight.shape
        a_rows = weight.new_zeros(len(keys), rank, in_features)
        b_rows = weight.new_zeros(len(keys), out_features, rank)
        for row, factors in enumerate(per_row):
            if factors is not None:
                r = factors.a.shape[0]
                a_rows[row, :r] = factors.a
                b_rows[row, :, :r] = factors.b
        return a_rows, b_rows

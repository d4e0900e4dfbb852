"""The engine's view of a model's weights: fused, quantized projections per decoder block.

The engine reads the float weights of a Llama-shaped causal LM (``LlamaForCausalLM`` or
``DSuiteForCausalLM``), fuses q/k/v into one projection and gate/up into one (a DSuite MoE layer with
every expert active is the exact sum of its experts, so its shared and routed experts are fused back into
one dense SwiGLU), and stores each projection in the precision the policy gives it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core_model.errors import DSuiteError
from core_model.quant import kernels
from core_model.quant.linear import QuantLinear
from core_model.quant.policy import Policy


@dataclass
class Projection:
    """One (possibly fused) linear projection ``x (N, K) -> (N, out)`` in fp32, int8 or int4."""

    precision: str
    out_features: int
    tensors: tuple[torch.Tensor, ...]
    group_size: int = 0
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def build(cls, weight: torch.Tensor, precision: str, group_size: int = 32) -> Projection:
        """Quantize ``weight`` (out, in) float to ``precision`` and bind the fastest kernel for it."""
        weight = weight.detach().float().contiguous()
        if precision == "fp32":
            w = weight.clone()
            return cls("fp32", w.shape[0], (w,), 0, lambda x: F.linear(x, w))
        if precision == "int8":
            q, s = kernels.quantize_int8(weight)
            return cls("int8", q.shape[0], (q, s), 0, lambda x: kernels.int8_matmul(x, q, s))
        if precision == "int4":
            if weight.shape[1] % group_size:
                raise DSuiteError(
                    f"A projection with {weight.shape[1]} inputs cannot use int4 group size {group_size}; "
                    f"use a group size that divides {weight.shape[1]} (32 or 64)."
                )
            p, d, m = kernels.quantize_int4(weight, group_size)
            return cls("int4", p.shape[0], (p, d, m), group_size,
                       lambda x: kernels.int4_matmul(x, p, d, m, group_size))
        raise DSuiteError(f"Unknown precision {precision!r}; expected fp32, int8 or int4.")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    def native_args(self) -> tuple[str, list[torch.Tensor], int]:
        """``(precision, tensors, group_size)``: how the C++ decode step takes this projection."""
        return self.precision, list(self.tensors), self.group_size


@dataclass
class BlockWeights:
    """Weights of one decoder block as the engine runs it."""

    ln1: torch.Tensor  # (D,)
    ln2: torch.Tensor  # (D,)
    qkv: Projection  # D -> (H + 2 KV) * hd
    o: Projection  # H * hd -> D
    gate_up: Projection  # D -> 2 I   (gate rows, then up rows)
    down: Projection  # I -> D
    intermediate: int


def float_weight(module: nn.Module) -> torch.Tensor:
    """The float32 weight of a linear layer (dequantized for ``QuantLinear``)."""
    if isinstance(module, QuantLinear):
        return module.dequantized_weight()
    if hasattr(module, "lora_A") or hasattr(module, "base_layer"):
        raise DSuiteError(
            "The engine got a model with peft LoRA layers. It runs plain (optionally quantized) bases; "
            "run adapters through peft on a quantized base (quantize_model + PeftModel) instead."
        )
    if not isinstance(module, nn.Linear):
        raise DSuiteError(f"Expected a linear layer, got {type(module).__name__}.")
    if module.bias is not None:
        raise DSuiteError("The engine supports bias-free projections only (Llama / DSuite shape).")
    return module.weight.detach().float()


def _mlp_weights(mlp: nn.Module, config, order: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """Dense (gate, up, down) weights of an MLP; a DSuite MoE with all experts active is fused exactly.

    ``order`` (the source channel of each fused column, ``core_model.convert.fused_channel_order``) puts
    the fused channels back in the source order: the same function, and int4 groups that line up with the
    blocks the source weights were quantized in.
    """
    if hasattr(mlp, "experts"):
        if not getattr(config, "all_experts_active", False):
            raise DSuiteError(
                f"The engine runs MoE layers with every expert active; this model routes top-"
                f"{config.experts_per_token} of {config.n_routed_experts}. Set experts_per_token=None, or "
                "generate through the model's own forward (core_model.generation)."
            )
        parts = ([mlp.shared_experts] if mlp.shared_experts is not None else []) + list(mlp.experts)
        gate = torch.cat([float_weight(p.gate_proj) for p in parts], 0)
        up = torch.cat([float_weight(p.up_proj) for p in parts], 0)
        down = torch.cat([float_weight(p.down_proj) for p in parts], 1)
        first = "shared_experts" if mlp.shared_experts is not None else "experts.0"
        if order is not None:
            if order.numel() != gate.shape[0]:
                raise DSuiteError(
                    f"The saved MLP channel order has {order.numel()} entries but this layer has "
                    f"{gate.shape[0]} fused channels: conversion/channel_order.safetensors belongs to "
                    "another conversion. Delete it and run `dsuite base prepare` to write it again."
                )
            back = torch.argsort(order)
            gate, up, down = gate[back], up[back], down[:, back]
        return gate, up, down, first
    return float_weight(mlp.gate_proj), float_weight(mlp.up_proj), float_weight(mlp.down_proj), ""


def build_blocks(model: nn.Module, policy: Policy) -> list[BlockWeights]:
    """Fused, quantized block weights of ``model`` under ``policy`` (decoder blocks only)."""
    config = model.config
    mode = getattr(config, "attention_mode", "full")
    if mode != "full":
        raise DSuiteError(
            f"The engine runs attention_mode 'full'; this model uses '{mode}'. Generate through the model's "
            "own forward (core_model.generation) for sliding/strided/hybrid attention."
        )
    blocks = []
    orders = getattr(model, "mlp_channel_order", None) or {}
    for i, layer in enumerate(model.model.layers):
        attn, mlp = layer.self_attn, layer.mlp
        prefix = f"model.layers.{i}"
        qkv_prec = policy.precision_for(f"{prefix}.self_attn.q_proj")
        qkv = torch.cat([float_weight(attn.q_proj), float_weight(attn.k_proj), float_weight(attn.v_proj)], 0)
        gate, up, down, first = _mlp_weights(mlp, config, orders.get(i))
        mlp_name = f"{prefix}.mlp.{first + '.' if first else ''}"
        o_prec = policy.precision_for(f"{prefix}.self_attn.o_proj")
        gu_prec = policy.precision_for(mlp_name + "gate_proj")
        blocks.append(
            BlockWeights(
                ln1=layer.input_layernorm.weight.detach().float().clone(),
                ln2=layer.post_attention_layernorm.weight.detach().float().clone(),
                qkv=Projection.build(qkv, *qkv_prec),
                o=Projection.build(float_weight(attn.o_proj), *o_prec),
                gate_up=Projection.build(torch.cat([gate, up], 0), *gu_prec),
                down=Projection.build(down, *policy.precision_for(mlp_name + "down_proj")),
                intermediate=gate.shape[0],
            )
        )
    return blocks

"""Exact conversion of a Llama checkpoint (the embedded SmolLM2) into the DomainSuite architecture.

Attention, norms and embeddings copy over unchanged (the ``full`` attention mode is Llama's attention; the
hybrid gate is opened fully to its global branch). A SwiGLU MLP is a sum over slices of its intermediate
dimension, so each MoE layer's dense MLP is permuted and sliced into experts without changing the function
when every expert is active:
- shared experts: the ``n_shared * m`` channels with the largest weight-norm importance
  ``|gate_c| * |up_c| * |down_c|``;
- routed experts: the remaining channels, grouped by balanced k-means on their normalized ``gate_proj`` rows
  (channels that fire on similar inputs share an expert, as in MoEfication);
- router: each routed expert's centroid of normalized gate rows (a zero-shot router; ``dsuite base
  calibrate`` fits it on text).

The permutation is kept beside the weights (``conversion/channel_order.safetensors``, outside the
fingerprint): the engine fuses the experts back into one dense MLP in the source channel order, so
``down_proj``'s int4 groups line up again with the 32-value blocks the GGUF weights were quantized in.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm.auto import tqdm

from core_model.config import DSuiteConfig, config_from_preset
from core_model.conversion_files import CHANNEL_ORDER_FILE
from core_model.errors import DSuiteError
from core_model.model import DSuiteForCausalLM

logger = logging.getLogger(__name__)


def balanced_kmeans(x: torch.Tensor, n_clusters: int, iterations: int = 12, seed: int = 0) -> torch.Tensor:
    """Cluster rows of ``x`` (N, D) into ``n_clusters`` groups of exactly N / n_clusters rows (cosine).

    Returns:
        (N,) cluster index per row.
    """
    n = x.shape[0]
    size = n // n_clusters
    x = torch.nn.functional.normalize(x.float(), dim=-1)
    gen = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(n, generator=gen)[:n_clusters]].clone()  # (E, D)
    assign = torch.zeros(n, dtype=torch.long)
    for _ in range(iterations):
        sim = x @ centroids.T  # (N, E)
        order = torch.argsort(sim.flatten(), descending=True).tolist()
        taken, room, chosen, left = [False] * n, [size] * n_clusters, [0] * n, n
        for flat in order:  # greedy: best (row, cluster) pairs first, each cluster capped at `size` rows
            row, cluster = divmod(flat, n_clusters)
            if taken[row] or room[cluster] == 0:
                continue
            chosen[row], taken[row] = cluster, True
            room[cluster] -= 1
            left -= 1
            if left == 0:
                break
        assign = torch.tensor(chosen, dtype=torch.long)
        centroids = torch.nn.functional.normalize(
            torch.stack([x[assign == c].mean(0) for c in range(n_clusters)]), dim=-1
        )
    return assign


def expert_partition(gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor, config: DSuiteConfig):
    """Split intermediate channels into shared and routed experts.

    Args:
        gate, up: (I, D) weights; down: (D, I).

    Returns:
        ``(shared_idx (n_shared*m,), [routed_idx (m,)] * n_routed, router (n_routed, D))``.
    """
    m, n_shared, n_routed = config.moe_intermediate_size, config.n_shared_experts, config.n_routed_experts
    total = gate.shape[0]
    if total != m * (n_shared + n_routed):
        raise DSuiteError(
            f"The dense MLP has {total} channels but the config asks for (n_shared {n_shared} + n_routed "
            f"{n_routed}) x moe_intermediate_size {m} = {m * (n_shared + n_routed)}; "
            "choose sizes that add up."
        )
    importance = gate.norm(dim=1) * up.norm(dim=1) * down.norm(dim=0)  # (I,)
    order = torch.argsort(importance, descending=True)
    shared = order[: n_shared * m].sort().values
    rest = order[n_shared * m :].sort().values
    clusters = balanced_kmeans(gate[rest], n_routed)
    routed = [rest[clusters == e] for e in range(n_routed)]
    unit = torch.nn.functional.normalize(gate.float(), dim=-1)
    router = torch.stack([unit[idx].mean(0) for idx in routed])  # (E, D)
    return shared, routed, router


@torch.no_grad()
def convert_llama(llama, preset: str = "smollm2-135m", progress: bool = True) -> DSuiteForCausalLM:
    """Convert a transformers ``LlamaForCausalLM`` into a :class:`DSuiteForCausalLM` with the same function.

    Args:
        llama: the source model (fp32).
        preset: the config preset giving the expert layout; its shape must match the Llama config.
        progress: show a progress bar over layers.

    Raises:
        DSuiteError: the Llama shape does not match the preset.
    """
    src = llama.config
    config = config_from_preset(preset)
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "max_position_embeddings"):
        if getattr(src, name) != getattr(config, name):
            raise DSuiteError(
                f"Cannot convert: the Llama checkpoint has {name}={getattr(src, name)} but preset '{preset}' "
                f"expects {getattr(config, name)}. Use a preset of the same shape."
            )
    rope = getattr(src, "rope_parameters", None) or {}
    config.rope_theta = float(rope.get("rope_theta", getattr(src, "rope_theta", config.rope_theta)))
    config.rms_norm_eps = float(src.rms_norm_eps)
    model = DSuiteForCausalLM(config).eval()
    sd = llama.state_dict()
    model.model.embed_tokens.weight.copy_(sd["model.embed_tokens.weight"])
    model.model.norm.weight.copy_(sd["model.norm.weight"])
    for i, layer in enumerate(tqdm(model.model.layers, desc="Converting layers", disable=not progress)):
        p = f"model.layers.{i}."
        layer.input_layernorm.weight.copy_(sd[p + "input_layernorm.weight"])
        layer.post_attention_layernorm.weight.copy_(sd[p + "post_attention_layernorm.weight"])
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            getattr(layer.self_attn, proj).weight.copy_(sd[p + f"self_attn.{proj}.weight"])
        # the hybrid gate opened fully to its global branch, set here rather than left to the library's
        # random weight initialisation, whose values differed between installs (so did the fingerprint)
        layer.self_attn.attn_gate.weight.zero_()
        layer.self_attn.attn_gate.bias.fill_(config.hybrid_gate_bias)
        gate, up, down = (sd[p + f"mlp.{n}.weight"] for n in ("gate_proj", "up_proj", "down_proj"))
        if not config.is_moe_layer(i):
            layer.mlp.gate_proj.weight.copy_(gate)
            layer.mlp.up_proj.weight.copy_(up)
            layer.mlp.down_proj.weight.copy_(down)
            continue
        shared, routed, router = expert_partition(gate, up, down, config)
        groups = [(layer.mlp.shared_experts, shared)] + list(zip(layer.mlp.experts, routed, strict=True))
        for expert, idx in groups:
            expert.gate_proj.weight.copy_(gate[idx])
            expert.up_proj.weight.copy_(up[idx])
            expert.down_proj.weight.copy_(down[:, idx])
        layer.mlp.gate.weight.copy_(router)
    model.tie_weights()
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(model.config, key, getattr(src, key, None))
    return model


def fused_channel_order(llama, model: DSuiteForCausalLM) -> dict[int, torch.Tensor]:
    """For each MoE layer, the source MLP channel of every fused column (shared expert, then routed experts).

    Found by matching ``down_proj`` columns exactly between the source Llama and the converted model, so it
    holds for any conversion that only permutes channels.

    Raises:
        DSuiteError: a fused column has no exact match in the source (the models are not a conversion pair).
    """
    orders = {}
    sd = llama.state_dict()
    for i, layer in enumerate(model.model.layers):
        mlp = layer.mlp
        if not hasattr(mlp, "experts"):
            continue
        source = sd[f"model.layers.{i}.mlp.down_proj.weight"].float()  # (D, I)
        where: dict[bytes, list[int]] = {}
        for c in range(source.shape[1]):
            where.setdefault(source[:, c].numpy().tobytes(), []).append(c)
        parts = ([mlp.shared_experts] if mlp.shared_experts is not None else []) + list(mlp.experts)
        fused = torch.cat([p.down_proj.weight.detach().float() for p in parts], 1)  # (D, I)
        order = []
        for c in range(fused.shape[1]):
            matches = where.get(fused[:, c].numpy().tobytes())
            if not matches:
                raise DSuiteError(
                    f"Layer {i}: fused MLP column {c} matches no source column; pass the Llama checkpoint "
                    "this model was converted from."
                )
            order.append(matches.pop(0))
        orders[i] = torch.tensor(order, dtype=torch.long)
    return orders


def save_channel_order(orders: dict[int, torch.Tensor], folder: Path) -> Path:
    """Write ``fused_channel_order``'s result under ``folder`` (outside the weights' fingerprint)."""
    from safetensors.torch import save_file

    path = Path(folder) / CHANNEL_ORDER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({f"layer.{i}": o for i, o in orders.items()}, str(tmp))
    tmp.replace(path)
    return path


def load_channel_order(model, folder: Path) -> bool:
    """Attach the saved channel order to ``model`` (``model.mlp_channel_order``); False when there is none."""
    path = Path(folder) / CHANNEL_ORDER_FILE
    if not path.is_file():
        return False
    from safetensors.torch import load_file

    model.mlp_channel_order = {int(k.split(".")[1]): v for k, v in load_file(str(path)).items()}
    return True

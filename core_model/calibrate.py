"""Router and hybrid-gate calibration: fit them on text with every other weight frozen.

Both fits are local and cheap, on hidden states the exact (dense, full-attention) base produces for the
calibration text:
- routers: each MoE layer's router learns to predict the share of output energy ``|expert_e(x)|^2`` of
  its routed experts (soft cross-entropy), so top-k keeps the experts whose terms matter most for that token;
- hybrid gates: each layer's per-head gate ``sigmoid(attn_gate(x))`` learns to mix its sliding and strided
  branches so each head's output is as close as possible (MSE) to its full-attention output.
The fitted tensors are written to ``<base>/calibration/calibration.safetensors`` with a JSON record; the
base fingerprint does not cover that sub-folder, so calibrating never changes it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from core_model.errors import DSuiteError
from core_model.modules.masks import attention_masks

logger = logging.getLogger(__name__)

CALIBRATION_DIR = "calibration"
CALIBRATION_FILE = "calibration.safetensors"
RECORD_FILE = "calibration.json"


def _chunks(tokenizer, texts: list[str], seq_len: int, n_seqs: int) -> torch.Tensor:
    """Pack the texts into ``n_seqs`` rows of ``seq_len`` token ids (B, T)."""
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text)["input_ids"] + [tokenizer.eos_token_id])
        if len(ids) >= seq_len * n_seqs:
            break
    rows = len(ids) // seq_len
    if rows < 1:
        raise DSuiteError(f"Calibration text gives {len(ids)} tokens; need at least seq_len={seq_len}.")
    return torch.tensor(ids[: min(rows, n_seqs) * seq_len]).view(-1, seq_len)


@torch.no_grad()
def _capture(model, batch: torch.Tensor):
    """Per-layer inputs of attention and of the MLP (B, T, D) for the exact base."""
    attn_in, mlp_in, hooks = {}, {}, []
    for i, layer in enumerate(model.model.layers):
        norm_a, norm_m = layer.input_layernorm, layer.post_attention_layernorm
        hooks.append(norm_a.register_forward_hook(lambda m, a, o, i=i: attn_in.__setitem__(i, o)))
        hooks.append(norm_m.register_forward_hook(lambda m, a, o, i=i: mlp_in.__setitem__(i, o)))
    try:
        model(batch, use_cache=False)
    finally:
        for hook in hooks:
            hook.remove()
    return attn_in, mlp_in


def fit_router(moe, x: torch.Tensor, steps: int, lr: float = 1e-2) -> float:
    """Fit one router on tokens x (N, D); returns the final soft cross-entropy."""
    with torch.no_grad():
        energy = torch.stack([expert(x).pow(2).sum(-1) for expert in moe.experts], dim=-1)  # (N, E)
        target = energy / energy.sum(-1, keepdim=True)
    weight = moe.gate.weight
    weight.requires_grad_(True)
    opt = torch.optim.Adam([weight], lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        loss = -(target * F.log_softmax(F.linear(x, weight), dim=-1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    weight.requires_grad_(False)
    return loss.item()


def fit_hybrid_gate(attn, x: torch.Tensor, cos, sin, config, steps: int, lr: float = 5e-2) -> float:
    """Fit one layer's per-head gate so hybrid attention matches full attention on x (B, T, D)."""
    from core_model.modules.rope import apply_rotary

    b, t, _ = x.shape
    with torch.no_grad():
        q = attn.q_proj(x).view(b, t, attn.n_heads, attn.head_dim).transpose(1, 2)
        k = attn.k_proj(x).view(b, t, attn.n_kv, attn.head_dim).transpose(1, 2)
        v = attn.v_proj(x).view(b, t, attn.n_kv, attn.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, k, cos, sin)
        masks = attention_masks(config, 0, t, t, None, x.device)
        full = attn._sdpa(q, k, v, None, True)  # (B, H, T, hd)
        local = attn._sdpa(q, k, v, masks["local"], False)
        global_ = attn._sdpa(q, k, v, masks["global"], False)
    gate = attn.attn_gate
    with torch.no_grad():
        gate.weight.zero_()
        gate.bias.zero_()
    params = [gate.weight, gate.bias]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        g = torch.sigmoid(gate(x)).transpose(1, 2).unsqueeze(-1)  # (B, H, T, 1)
        mixed = g * global_ + (1 - g) * local
        loss = F.mse_loss(mixed, full)  # per-head outputs before o_proj: cheap, and o_proj is fixed
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in params:
        p.requires_grad_(False)
    return loss.item()


def calibrate(base, texts: list[str], steps: int = 300, seq_len: int = 256, n_seqs: int = 16,
              source: str = "", progress: bool = True) -> Path:
    """Fit routers and hybrid gates of a loaded base (:class:`core_model.base.Base`) and save them.

    Args:
        base: the loaded exact base (full attention, all experts).
        texts: calibration text (not the text used to evaluate sparsity).
        steps: optimizer steps per router and per gate.
        seq_len, n_seqs: token rows the hidden states are taken from.
        source: a description of the text, written to the record.
        progress: show a progress bar.

    Returns:
        The calibration folder.

    Raises:
        DSuiteError: the base is not the suite's architecture, or the text is too short.
    """
    model = base.model
    config = model.config
    if getattr(config, "model_type", None) != "dsuite":
        raise DSuiteError(
            f"Calibration needs a base in the suite's architecture (model_type 'dsuite'); '{base.path}' is "
            f"'{getattr(config, 'model_type', None)}'. Use the converted embedded base or another "
            "converted checkpoint."
        )
    if config.attention_mode != "full" or not config.all_experts_active:
        raise DSuiteError(
            "Calibrate the exact base: load it without attention_mode/experts_per_token overrides."
        )
    batch = _chunks(base.tokenizer, texts, seq_len, n_seqs)
    attn_in, mlp_in = _capture(model, batch)
    hybrid = type(config)(**{**config.to_dict(), "attention_mode": "hybrid"})
    position_ids = torch.arange(batch.shape[1])[None].expand(batch.shape[0], -1)
    cos, sin = model.model.rotary_emb(position_ids, torch.float32)
    tensors, losses = {}, {}
    layers = list(enumerate(model.model.layers))
    for i, layer in tqdm(layers, desc="Calibrating layers", disable=not progress):
        prefix = f"model.layers.{i}."
        if config.is_moe_layer(i):
            tokens = mlp_in[i].reshape(-1, config.hidden_size)
            losses[f"{prefix}router_ce"] = fit_router(layer.mlp, tokens, steps)
            tensors[prefix + "mlp.gate.weight"] = layer.mlp.gate.weight.detach().clone()
        losses[f"{prefix}gate_mse"] = fit_hybrid_gate(layer.self_attn, attn_in[i], cos, sin, hybrid, steps)
        tensors[prefix + "self_attn.attn_gate.weight"] = layer.self_attn.attn_gate.weight.detach().clone()
        tensors[prefix + "self_attn.attn_gate.bias"] = layer.self_attn.attn_gate.bias.detach().clone()
    folder = Path(base.path) / CALIBRATION_DIR
    folder.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / CALIBRATION_FILE))
    record = {
        "fingerprint": base.fingerprint, "source": source, "tokens": int(batch.numel()), "steps": steps,
        "window": config.window, "stride": config.stride, "sink_tokens": config.sink_tokens, "losses": losses,
    }
    (folder / RECORD_FILE).write_text(json.dumps(record, indent=1))
    logger.info("calibration written to %s", folder)
    return folder


def load_calibration(model, base_dir: str | Path) -> dict:
    """Load fitted routers/gates from ``<base_dir>/calibration`` into ``model``; returns the record.

    Raises:
        DSuiteError: no calibration exists, it was fitted on another base, or its tensors do not fit.
    """
    from core_model.fingerprint import fingerprint

    folder = Path(base_dir) / CALIBRATION_DIR
    if not (folder / CALIBRATION_FILE).is_file():
        raise DSuiteError(f"No calibration in '{folder}'. Run `dsuite base calibrate` first.")
    record = json.loads((folder / RECORD_FILE).read_text())
    if record.get("fingerprint") != fingerprint(Path(base_dir)):
        raise DSuiteError(
            f"The calibration in '{folder}' was fitted on base {record.get('fingerprint')}, not on "
            f"{fingerprint(Path(base_dir))}. Re-run `dsuite base calibrate`."
        )
    tensors = load_file(str(folder / CALIBRATION_FILE))
    params = dict(model.named_parameters())
    missing = [k for k in tensors if k not in params or params[k].shape != tensors[k].shape]
    if missing:
        raise DSuiteError(
            f"Calibration tensors {missing[:3]} do not fit this model; re-run `dsuite base calibrate`."
        )
    with torch.no_grad():
        for key, value in tensors.items():
            params[key].copy_(value)
    for knob in ("window", "stride", "sink_tokens"):
        if record.get(knob) != getattr(model.config, knob):
            logger.warning(
                "hybrid gates were calibrated with %s=%s, the model uses %s",
                knob, record.get(knob), getattr(model.config, knob),
            )
    return record

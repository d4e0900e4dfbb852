"""Resumable training checkpoints: LoRA weights and AdamW state as safetensors, progress as JSON."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from adapters.registry import shared_mkdtemp

STATE_FILE = "state.json"
WEIGHTS_FILE = "adapter_model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"


def save_checkpoint(
    folder: Path,
    lora: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    params: list[tuple[str, torch.nn.Parameter]],
    state: dict,
) -> None:
    """Write a checkpoint atomically (temp folder + rename), readable as ``mkdir`` would make it (umask)."""
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = shared_mkdtemp(f".{folder.name}-", folder.parent)
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in lora.items()}, str(tmp / WEIGHTS_FILE))
        moments = {}
        steps = {}
        for name, param in params:
            slot = optimizer.state.get(param, {})
            for moment in ("exp_avg", "exp_avg_sq"):
                if moment in slot:
                    moments[f"{name}::{moment}"] = slot[moment].detach().cpu().contiguous()
            if "step" in slot:
                steps[name] = float(slot["step"])
        save_file(moments or {"empty": torch.zeros(1)}, str(tmp / OPTIMIZER_FILE))
        (tmp / STATE_FILE).write_text(json.dumps({**state, "adam_steps": steps}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(folder: Path) -> tuple[dict, dict, dict] | None:
    """(state, LoRA tensors, optimizer tensors) of a checkpoint, or ``None`` when there is none."""
    from safetensors.torch import load_file

    if not (folder / STATE_FILE).is_file():
        return None
    state = json.loads((folder / STATE_FILE).read_text())
    return state, load_file(str(folder / WEIGHTS_FILE)), load_file(str(folder / OPTIMIZER_FILE))


def restore_optimizer(
    optimizer: torch.optim.Optimizer,
    params: list[tuple[str, torch.nn.Parameter]],
    moments: dict[str, torch.Tensor],
    steps: dict[str, float],
) -> None:
    """Put saved AdamW moments back into a fresh optimizer (on the device of each parameter)."""
    for name, param in params:
        if f"{name}::exp_avg" in moments:
            optimizer.state[param] = {
                "step": torch.tensor(steps.get(name, 0.0)),
                "exp_avg": moments[f"{name}::exp_avg"].to(param.device, copy=True),
                "exp_avg_sq": moments[f"{name}::exp_avg_sq"].to(param.device, copy=True),
            }

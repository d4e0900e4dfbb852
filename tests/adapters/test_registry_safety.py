"""Registry safety: shape checks on `register --from`, clear folder errors, versions never reused, alias
moves reported on removal, shared-folder permissions, and honest figures and no warnings on resume."""

from __future__ import annotations

import json
import os
import stat
import warnings

import pytest
import torch
from safetensors.torch import save_file

from adapters.checkpoint import STATE_FILE, save_checkpoint
from adapters.config import LoraTrainConfig
from adapters.data import write_jsonl
from adapters.registry import ISSUED_FILE, Registry
from adapters.train import make_scheduler, train_adapter
from apps.cli import main
from tests.adapters.conftest import crash_after_first_checkpoint, random_lora

COLOURS = ["red", "green", "blue"]


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out = capsys.readouterr()
    return stop.value.code or 0, out.out, out.err


def _peft_folder(path, tensors, config):
    path.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path / "adapter_model.safetensors"))
    (path / "adapter_config.json").write_text(json.dumps(config))
    return path


def _register_cli(capsys, reg, base, folder, name="warranty"):
    return run(
        capsys,
        "adapters",
        "register",
        "--name",
        name,
        "--from",
        str(folder),
        "--base",
        str(base.path),
        "--registry",
        str(reg),
    )


# ---------------------------------------------------------------------- 1. register --from
def test_cli_register_refuses_lora_shapes_that_do_not_fit_the_base(capsys, tmp_path, tiny_base):
    reg = tmp_path / "reg"
    tensors, config = random_lora(tiny_base, 1)
    good = _peft_folder(tmp_path / "good", tensors, config)
    code, out, err = _register_cli(capsys, reg, tiny_base, good)
    assert code == 0, err
    assert "warranty@1" in out

    wrong_width = dict(tensors)
    key = next(k for k in tensors if "q_proj.lora_A" in k)
    wrong_width[key] = torch.zeros(4, 999)
    bad = _peft_folder(tmp_path / "bad", wrong_width, config)
    code, _, err = _register_cli(capsys, reg, tiny_base, bad)
    assert code == 2
    assert "do not fit" in err and "A(4, 999)" in err and "(64, 64)" in err
    assert "Traceback" not in err

    other_layer = {k.replace("layers.1.", "layers.7."): v for k, v in tensors.items()}
    deeper = _peft_folder(tmp_path / "deeper", other_layer, config)
    code, _, err = _register_cli(capsys, reg, tiny_base, deeper)
    assert code == 2 and "not a Linear module of this base" in err

    registry = Registry(reg)
    assert registry.versions("warranty") == [1]
    assert registry.aliases("warranty") == {"latest": 1}  # `latest` did not move to the refused folder


def test_cli_register_reports_missing_folder_and_broken_config(capsys, tmp_path, tiny_base):
    reg = tmp_path / "reg"
    code, _, err = _register_cli(capsys, reg, tiny_base, tmp_path / "no_such_folder")
    assert code == 2
    assert "not found" in err and "not a peft adapter folder" not in err

    tensors, config = random_lora(tiny_base, 1)
    folder = _peft_folder(tmp_path / "broken", tensors, config)
    (folder / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4,')
    code, _, err = _register_cli(capsys, reg, tiny_base, folder)
    assert code == 2
    assert "adapter_config.json' is not valid JSON" in err and "line 1" in err
    assert "Traceback" not in err and "JSONDecodeError" not in err

    (folder / "adapter_config.json").write_text("[1, 2]")
    code, _, err = _register_cli(capsys, reg, tiny_base, folder)
    assert code == 2 and "not an object" in err
    assert Registry(reg).names() == []


# ---------------------------------------------------------------------- 2. versions and aliases
def _register(registry, tiny_base, seed, name="warranty"):
    tensors, config = random_lora(tiny_base, seed)
    return registry.register(name, tensors, config, base_fingerprint=tiny_base.fingerprint)


def test_version_numbers_are_never_reused(registry, tiny_base):
    assert [_register(registry, tiny_base, s).version for s in (1, 2)] == [1, 2]
    old_hash = registry.resolve("warranty@2").content_hash
    registry.remove("warranty@2")
    third = _register(registry, tiny_base, 3)
    assert third.version == 3 and third.content_hash != old_hash
    assert registry.versions("warranty") == [1, 3]

    registry.remove("warranty")  # every version: the counter stays
    assert registry.names() == [] and registry.versions("warranty") == []
    assert _register(registry, tiny_base, 4).version == 4

    # another process (a second Registry on the folder) continues the same sequence
    assert _register(Registry(registry.root), tiny_base, 5).version == 5


def test_registry_without_counter_file_does_not_reuse_removed_numbers(registry, tiny_base):
    """A registry written before the counter file existed: removal records the highest number first."""
    for seed in (1, 2, 3):
        _register(registry, tiny_base, seed)
    (registry.root / "warranty" / ISSUED_FILE).unlink()
    registry.remove("warranty@3")
    assert _register(registry, tiny_base, 4).version == 4


def test_remove_reports_moved_and_dropped_aliases(capsys, registry, tiny_base):
    for seed in (1, 2):
        _register(registry, tiny_base, seed)
    registry.alias("warranty", "stable", 2)
    removed = registry.remove("warranty@2")
    assert removed == ["warranty@2"]
    assert removed.aliases == {"latest": (2, 1), "stable": (2, 1)}
    assert registry.aliases("warranty") == {"latest": 1, "stable": 1}

    _register(registry, tiny_base, 3)  # warranty@3, latest -> 3; stable stays on 1
    code, out, _ = run(capsys, "adapters", "remove", "warranty@1", "--registry", str(registry.root))
    assert code == 0
    assert "removed warranty@1" in out
    assert "moved alias warranty@stable: warranty@1 -> warranty@3" in out
    assert "latest" not in out  # it did not move

    code, out, _ = run(capsys, "adapters", "remove", "warranty", "--registry", str(registry.root))
    assert code == 0
    assert "dropped alias warranty@latest (was warranty@3" in out
    assert "dropped alias warranty@stable (was warranty@3" in out


# ---------------------------------------------------------------------- 4. permissions
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_version_and_checkpoint_folders_follow_the_umask(registry, tiny_base, umask):
    previous = os.umask(umask)
    try:
        ref = _register(registry, tiny_base, 1)
        param = torch.nn.Parameter(torch.zeros(2))
        optimizer = torch.optim.AdamW([param])
        ckpt = registry.root / ".checkpoints" / "warranty"
        save_checkpoint(ckpt, {"w": torch.zeros(1)}, optimizer, [("w", param)], {"step": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(ref.path.stat().st_mode) == 0o777 & ~umask
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o777 & ~umask


# ---------------------------------------------------------------------- 3 and 5. resume
def test_scheduler_built_at_a_step_matches_an_uninterrupted_one_without_warning():
    def lr_at(step: int) -> float:
        return (step + 1) / 3 if step < 2 else max(0.05, 1 - (step - 2) / 7)

    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param], lr=0.1)
    scheduler = make_scheduler(optimizer, lr_at)
    uninterrupted = []
    for _ in range(8):
        uninterrupted.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.ones(3)
        optimizer.step()
        scheduler.step()
    for start in range(8):
        fresh = torch.nn.Parameter(torch.ones(3))
        resumed = torch.optim.AdamW([fresh], lr=0.1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            later = make_scheduler(resumed, lr_at, start)
            assert resumed.param_groups[0]["lr"] == uninterrupted[start]
            fresh.grad = torch.ones(3)
            resumed.step()
            later.step()
        if start + 1 < 8:
            assert resumed.param_groups[0]["lr"] == uninterrupted[start + 1]


def test_resumed_run_keeps_the_schedule_and_reports_its_own_speed(tmp_path, tiny_base, registry, monkeypatch):
    records = [{"prompt": f"Colour of item {i}?", "completion": COLOURS[i % 3]} for i in range(24)]
    data = write_jsonl(tmp_path / "colours.jsonl", records)
    config = LoraTrainConfig.preset("tiny").with_(max_steps=6, checkpoint_every=3, lr=3e-2, warmup_steps=2)
    full = train_adapter("colours", data, base=tiny_base, config=config, registry=registry, progress=False)
    whole = full.meta["training"]
    assert len(whole["lrs"]) == 6 and whole["tokens_this_run"] == whole["tokens_total"] > 0

    with crash_after_first_checkpoint(monkeypatch):
        train_adapter("colours", data, base=tiny_base, config=config, registry=registry, progress=False)
    saved = json.loads((registry.root / ".checkpoints" / "colours" / STATE_FILE).read_text())
    assert saved["step"] == 3

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = train_adapter(
            "colours", data, base=tiny_base, config=config, registry=registry, resume=True, progress=False
        )
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    part = resumed.meta["training"]
    assert part["resumed_from_step"] == 3
    assert part["lrs"] == whole["lrs"]  # the same rate at every step, the resumed ones included
    assert part["lrs"][3] == whole["lrs"][3]
    assert part["tokens_total"] == whole["tokens_total"]
    assert part["tokens_this_run"] == whole["tokens_total"] - saved["tokens"]
    assert 0 < part["tokens_this_run"] < part["tokens_total"]
    assert part["seconds"] > 0
    assert part["train_tokens_per_s"] == pytest.approx(part["tokens_this_run"] / part["seconds"], rel=0.05)

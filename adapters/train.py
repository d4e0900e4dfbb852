"""Train a LoRA adapter from a JSONL file and register it.

Loss on completion tokens only, with the output head run only at those positions; batches of similar
lengths (little padding); a held-out split evaluated at the end; resumable checkpoints; a progress bar
with the running loss. The base model is never modified: training runs on a copy of it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import hashlib
import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import torch

from adapters.checkpoint import load_checkpoint, restore_optimizer, save_checkpoint
from adapters.config import LoraTrainConfig
from adapters.data import (
    Example,
    encode_examples,
    iter_epochs,
    load_examples,
    read_examples,
    split_examples,
    usable_examples,
)
from adapters.registry import AdapterRef, Registry, check_name
from core_model.base import Base, load_base, resolve_base_path
from core_model.errors import DSuiteError
from core_model.fingerprint import fingerprint

logger = logging.getLogger(__name__)

EvalFn = Callable[["object", str], dict]  # (AdapterManager, "name@version") -> metrics


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def default_data_card(name: str, path: Path, n_train: int, n_eval: int, sha: str) -> str:
    """A minimal data card for an adapter trained on a user file (a richer card can be passed instead)."""
    return (
        f"# Training data of adapter `{name}`\n\n"
        f"- source: `{path.name}` (sha256 {sha[:16]}...)\n"
        f"- size: {n_train + n_eval} records: {n_train} train, {n_eval} held out\n"
        "- fields: chat `messages` or `prompt`/`completion`; the loss covers the final assistant turn only\n"
        "- license, intended use and known limits: not stated by the uploader\n"
    )


def _depth(base: Base | Path) -> int | None:
    """The number of decoder layers of a loaded base or of a checkpoint folder (read from config.json)."""
    if isinstance(base, Base):
        return getattr(base.model.config, "num_hidden_layers", None)
    try:
        settings = json.loads((Path(base) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    depth = settings.get("num_hidden_layers") if isinstance(settings, dict) else None
    return depth if isinstance(depth, int) else None


def _check_layers(config: LoraTrainConfig, depth: int | None) -> None:
    if config.layers is not None and depth is not None and max(config.layers) >= depth:
        raise DSuiteError(
            f"layers={list(config.layers)} names a layer the base does not have: it has {depth} decoder "
            f"layers, 0 to {depth - 1}."
        )


def run_differences(saved: dict, current: dict) -> list[str]:
    """What differs between two training runs' identities (data sha256, settings, base fingerprint)."""
    current = _jsonable(current)
    found = []
    if saved.get("data_sha256") != current["data_sha256"]:
        found.append(
            f"other data (sha256 {str(saved.get('data_sha256'))[:12]}... in the checkpoint, "
            f"{current['data_sha256'][:12]}... now)"
        )
    old, new = saved.get("config") or {}, current["config"]
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if keys:
        changes = ", ".join(f"{k}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now" for k in keys)
        found.append(f"other settings ({changes})")
    if saved.get("base") != current["base"]:
        found.append(
            f"another base (fingerprint {saved.get('base')} in the checkpoint, {current['base']} now)"
        )
    return found or ["another identity"]


def find_trained(registry: Registry, name: str, run_id: dict) -> AdapterRef | None:
    """The newest version of ``name`` trained from the same data sha256, settings and base, if any."""
    run_id = _jsonable(run_id)
    for version in reversed(registry.versions(name)):
        ref = registry.resolve(f"{name}@{version}")
        training = ref.meta.get("training") or {}
        if (
            training.get("data_sha256") == run_id["data_sha256"]
            and training.get("settings") == run_id["config"]
            and ref.base_fingerprint == run_id["base"]
        ):
            return ref
    return None


def _batch(tokenizer, encoded: list[tuple[list[int], list[int]]], indices: list[int], device: torch.device):
    """(ids, mask, targets) of the records at ``indices``, right-padded, on ``device``."""
    from adapters.lm import pad_right

    rows = [encoded[i][0] + encoded[i][1] for i in indices]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids, mask = pad_right(rows, pad)
    targets = torch.zeros_like(mask, dtype=torch.bool)
    for row, i in enumerate(indices):
        start = len(encoded[i][0])
        targets[row, start : start + len(encoded[i][1])] = True
    return ids.to(device), mask.to(device), targets.to(device)


def training_device(device: str | None = None) -> torch.device:
    """The device a training run uses: ``device`` if given, else the first GPU PyTorch sees, else the CPU.

    Raises:
        DSuiteError: ``device`` is not a device name, or names a GPU this PyTorch cannot use.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise DSuiteError(f"'{device}' is not a device; use cpu, cuda or cuda:N.") from exc
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise DSuiteError(
            f"--device {device}: this PyTorch sees no CUDA GPU (torch {torch.__version__}); "
            "train on the CPU (--device cpu) or install a CUDA build of torch on a GPU machine."
        )
    if chosen.type not in ("cpu", "cuda"):
        raise DSuiteError(f"Training runs on cpu or cuda, not '{device}'.")
    return chosen


def make_scheduler(optimizer: torch.optim.Optimizer, lr_at: Callable[[int], float], start_step: int = 0):
    """A ``LambdaLR`` whose next ``scheduler.step()`` follows optimizer step ``start_step`` (0: a fresh run).

    A resumed run builds it at ``start_step`` (``last_epoch=start_step - 1``) instead of replaying
    ``scheduler.step()`` that many times before any ``optimizer.step()``, which made PyTorch warn "Detected
    call of lr_scheduler.step() before optimizer.step()" on every resume. ``LambdaLR``'s rate is a function of
    the step alone, so the schedule is exactly that of an uninterrupted run.
    """
    if start_step:
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at, last_epoch=start_step - 1)


def _mean_nll(model, tokenizer, encoded, batch_size: int, device: torch.device) -> float:
    from adapters.lm import target_logprobs

    total, count = 0.0, 0
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]) + len(encoded[i][1]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            ids, mask, targets = _batch(tokenizer, encoded, order[start : start + batch_size], device)
            logprobs, _ = target_logprobs(model, ids, mask, targets)
            total -= float(logprobs.sum())
            count += logprobs.numel()
    return total / max(count, 1)


def checkpoint_dir(registry: Registry, name: str) -> Path:
    """Where a training run of ``name`` keeps its checkpoint until the version is registered."""
    return registry.root / ".checkpoints" / name


@contextlib.contextmanager
def training_lock(registry: Registry, name: str) -> Iterator[None]:
    """Hold ``name``'s training lock in ``registry`` for one run: two runs of one name would write over each
    other's checkpoint and resume from the wrong one. A second run is refused at once, naming the process that
    holds the lock; the lock goes with the process, however it ends."""
    folder = registry.root / ".checkpoints" / ".locks"  # apart from the checkpoints: "x.lock" is a valid name
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DSuiteError(
                f"Another run is training '{name}' in the registry {registry.root} right now (process "
                f"{holder}). Wait for it to end, or train under another name."
            ) from None
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _one_run_per_name(train: Callable[..., AdapterRef]) -> Callable[..., AdapterRef]:
    """Run ``train`` under :func:`training_lock` of its adapter name and registry."""

    @functools.wraps(train)
    def run(name: str, data: str | Path, **options) -> AdapterRef:
        check_name(name)  # before the name becomes a file name
        registry = options.get("registry")
        options["registry"] = registry = registry if registry is not None else Registry()
        with training_lock(registry, name):
            return train(name, data, **options)

    return run


def _diverged(name: str, ckpt_dir: Path, what: str, config: LoraTrainConfig) -> NoReturn:
    """Refuse to register a run whose loss is no longer a number; its checkpoint goes too (resuming it with
    the same settings would diverge again)."""
    import shutil

    shutil.rmtree(ckpt_dir, ignore_errors=True)
    raise DSuiteError(
        f"Training {name} diverged: {what} (lr={config.lr}). Nothing was registered; train again with a "
        "lower --lr (the default preset uses 2e-4)."
    )


@_one_run_per_name
def train_adapter(
    name: str,
    data: str | Path,
    *,
    base: Base | str | Path | None = None,
    config: LoraTrainConfig | None = None,
    registry: Registry | None = None,
    eval_fn: EvalFn | None = None,
    resume: bool = False,
    data_card: str | None = None,
    progress: bool = True,
    aliases: tuple[str, ...] = ("latest",),
    exemplars: list[str] | None = None,
    skip_bad_rows: bool = False,
    device: str | None = None,
) -> AdapterRef:
    """Train a LoRA adapter on ``data`` and register it as the next version of ``name``.

    Args:
        name: adapter name in the registry.
        data: JSONL file of ``{"messages": [...]}`` or ``{"prompt", "completion"}`` records.
        base: a loaded :class:`Base`, a checkpoint folder, or ``None`` for the embedded default.
        config: training settings (default ``LoraTrainConfig()``: r=16, alpha=32, dropout 0.1, q_proj/v_proj).
        registry: where to register (default ``Registry()``).
        eval_fn: optional ``eval_fn(manager, "name@version") -> {metric: value}`` run after registration;
            its metrics are recorded in the adapter's meta.
        resume: continue from the last checkpoint of an interrupted run with the same data and settings.
            Without a checkpoint, a version already trained from the same data (sha256), settings and base
            is returned as it is (a warning says so) instead of registering a duplicate.
        data_card: markdown data card (default: a generated one naming the file and split sizes).
        progress: show a tqdm bar with the running loss.
        aliases: aliases moved to the new version.
        exemplars: requests stored for the router (default: the last user turn of up to 400 records).
        skip_bad_rows: train on the valid records of ``data`` and log the bad ones (default: any bad
            record is an error that lists them all).
        device: where the training copy of the model runs: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (default:
            the first GPU when PyTorch sees one, else the CPU). On a GPU, float32 matrix products use TF32.
            The registered adapter is the same either way: its tensors are saved from the CPU.

    Returns:
        The registered adapter version (with ``resume``, possibly an existing one, see above). Its
        ``meta["training"]`` records ``lrs`` and ``losses`` per step (a resumed run: from step 0, the
        checkpoint's part included) and the speed of this run alone: ``seconds`` is this process's training
        time, ``tokens_this_run`` the tokens it trained (after a resume, those since the checkpoint) and
        ``train_tokens_per_s`` their ratio; ``tokens_total`` counts every step.

    Raises:
        DSuiteError: bad data, settings, layers or base, all checked before the base model is loaded;
            another run training ``name`` in this registry at the same time (``training_lock``).
    """
    from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
    from tqdm.auto import tqdm

    from adapters.lm import with_lora

    # Everything that can be checked without the model comes first: loading a base takes a while.
    check_name(name)
    device = training_device(device)
    config = config or LoraTrainConfig()
    registry = registry if registry is not None else Registry()
    path = Path(data)
    examples, bad = read_examples(path)
    examples = usable_examples(path, examples, bad, skip_bad_rows)
    train, held = split_examples(examples, config.eval_fraction, config.seed)
    held = held[: config.max_eval]
    sha = _file_sha256(path)
    if isinstance(base, Base):
        _check_layers(config, _depth(base))
    else:
        folder = resolve_base_path(base)  # a bad --base fails here, before any loading
        _check_layers(config, _depth(folder))
    ckpt_dir = checkpoint_dir(registry, name)
    found = None
    if resume:
        base_fingerprint = base.fingerprint if isinstance(base, Base) else fingerprint(folder)
        run_id = {"data_sha256": sha, "config": config.to_dict(), "base": base_fingerprint}
        found = load_checkpoint(ckpt_dir)
        if found is not None and found[0].get("run") != _jsonable(run_id):
            raise DSuiteError(
                f"The checkpoint in {ckpt_dir} belongs to a run with "
                f"{'; '.join(run_differences(found[0].get('run') or {}, run_id))}. "
                "Pass the same data and settings to resume it, or train without --resume (which overwrites "
                "the checkpoint)."
            )
        if found is None:
            done = find_trained(registry, name, run_id)
            if done is not None:
                logger.warning(
                    "%s was already trained from this data (sha256 %s...), these settings and this base; "
                    "nothing to resume, nothing registered. Train without --resume for another version.",
                    done.key,
                    sha[:12],
                )
                return done
            logger.warning("no checkpoint for %s in %s: training from the start", name, ckpt_dir)

    base = base if isinstance(base, Base) else load_base(base)
    run_id = {"data_sha256": sha, "config": config.to_dict(), "base": base.fingerprint}
    tokenizer = base.tokenizer
    both, cut = encode_examples(tokenizer, train + held, config.max_length)
    encoded, held_encoded = both[: len(train)], both[len(train) :]
    cut.lines.sort()
    if cut.records:
        logger.warning("adapter %s: %s", name, cut.describe(len(train) + len(held), config.max_length))
    lengths = [len(p) + len(c) for p, c in encoded]
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * steps_per_epoch))
    torch.manual_seed(config.seed)
    model = copy.deepcopy(base.model).to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    lora_config = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=list(config.layers) if config.layers is not None else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    missing = [t for t in config.target_modules if not any(n == t or n.endswith("." + t) for n in linear)]
    if missing:  # peft adapts the names it finds and ignores the rest when any name matches
        raise DSuiteError(
            f"The base has no Linear module named {', '.join(repr(t) for t in missing)} (target_modules="
            f"{list(config.target_modules)}). Name Linear modules of the base: "
            f"{', '.join(sorted({n.rsplit('.', 1)[-1] for n in linear}))}."
        )
    try:
        peft_model = with_lora(model, lora_config)
    except ValueError as exc:
        raise DSuiteError(
            f"Cannot put LoRA on target_modules={list(config.target_modules)} of {type(model).__name__}: "
            f"{str(exc).rstrip('.')}. "
            "Name Linear modules of the base, e.g. q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj."
        ) from exc
    params = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
    trainable = sum(p.numel() for _, p in params)
    total = sum(p.numel() for p in peft_model.parameters())
    share = trainable / total
    logger.info("adapter %s: %d trainable parameters of %d (%.3f%%)", name, trainable, total, 100 * share)
    optimizer = torch.optim.AdamW([p for _, p in params], lr=config.lr, weight_decay=config.weight_decay)

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        return max(0.05, 1 - (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))

    start_step, tokens_seen, losses, lrs = 0, 0, [], []
    if found is not None:
        state, lora_tensors, moments = found
        set_peft_model_state_dict(peft_model, lora_tensors)
        restore_optimizer(optimizer, params, moments, state.get("adam_steps", {}))
        start_step, tokens_seen, losses = state["step"], state["tokens"], state.get("losses", [])
        lrs = state.get("lrs", [])
        logger.info("resumed %s at step %d of %d", name, start_step, total_steps)
    scheduler = make_scheduler(optimizer, lr_at, start_step)
    tokens_before = tokens_seen  # restored from the checkpoint: not trained by this run

    from adapters.lm import target_logprobs

    batches = itertools.islice(iter_epochs(lengths, config.batch_size, config.seed), start_step, None)
    peft_model.train()
    started = time.perf_counter()
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {name}", disable=not progress, unit="step")
    running = None
    for step in range(start_step, total_steps):
        ids, mask, targets = _batch(tokenizer, encoded, next(batches), device)
        logprobs, _ = target_logprobs(peft_model, ids, mask, targets)
        loss = -logprobs.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        lrs.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        if not math.isfinite(value):  # the weights are NaN from here on: registering them serves nothing
            bar.close()
            _diverged(name, ckpt_dir, f"the loss was {value} at step {step + 1}", config)
        losses.append(round(value, 4))
        tokens_seen += int(mask.sum())
        running = value if running is None else 0.9 * running + 0.1 * value
        bar.set_postfix(loss=f"{running:.3f}")
        bar.update()
        done = step + 1
        if config.checkpoint_every and done % config.checkpoint_every == 0 and done < total_steps:
            save_checkpoint(
                ckpt_dir,
                get_peft_model_state_dict(peft_model),
                optimizer,
                params,
                {"run": run_id, "step": done, "tokens": tokens_seen, "losses": losses, "lrs": lrs},
            )
    bar.close()
    seconds = time.perf_counter() - started
    peft_model.eval()
    eval_loss = _mean_nll(peft_model, tokenizer, held_encoded, config.batch_size, device)
    if not math.isfinite(eval_loss):
        _diverged(name, ckpt_dir, f"the held-out loss is {eval_loss}", config)
    tensors = {k: v.detach().to("cpu").clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    adapter_config = _jsonable(peft_model.peft_config["default"].to_dict())
    del peft_model, model, optimizer
    training = {
        "settings": config.to_dict(),
        "data_file": path.name,
        "data_sha256": sha,
        "train_records": len(train),
        "heldout_records": len(held),
        "steps": total_steps,
        "resumed_from_step": start_step,
        "skipped_bad_records": len(bad) if skip_bad_rows else 0,
        "truncated_records": cut.records,
        "first_loss": losses[0] if losses else None,
        "final_loss": float(sum(losses[-10:]) / max(1, len(losses[-10:]))) if losses else None,
        "losses": losses,
        "lrs": lrs,
        "seconds": round(seconds, 3),
        "tokens_this_run": tokens_seen - tokens_before,
        "tokens_total": tokens_seen,
        "train_tokens_per_s": round((tokens_seen - tokens_before) / max(seconds, 1e-9), 1),
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": share,
    }
    ref = registry.register(
        name,
        tensors,
        adapter_config,
        base_fingerprint=base.fingerprint,
        data_card=data_card or default_data_card(name, path, len(train), len(held), sha),
        training=training,
        metrics={"heldout_nll": round(eval_loss, 4)},
        exemplars=exemplars if exemplars is not None else [e.prompt_text for e in train[:400]],
        aliases=aliases,
    )
    if ckpt_dir.exists():
        import shutil

        shutil.rmtree(ckpt_dir, ignore_errors=True)
    if eval_fn is not None:
        from adapters.manager import AdapterManager

        manager = AdapterManager(base, registry)
        try:
            metrics = eval_fn(manager, ref.key)
        finally:
            manager.close()
        ref = registry.update_metrics(ref, metrics)
    logger.info("registered %s: held-out NLL %.4f, %.1f s", ref.key, eval_loss, seconds)
    return ref


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set) else items
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value


def heldout_examples(
    data: str | Path, config: LoraTrainConfig | None = None, skip_bad_rows: bool = False
) -> list[Example]:
    """The held-out records train_adapter sets aside for ``data`` with ``config`` (for evaluations)."""
    config = config or LoraTrainConfig()
    examples = load_examples(data, skip_bad_rows=skip_bad_rows)
    return split_examples(examples, config.eval_fraction, config.seed)[1][: config.max_eval]

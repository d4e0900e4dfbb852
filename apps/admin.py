"""Adapter admin: the registry, training from an uploaded JSONL with live loss, rollback, base vs adapter.

A newly trained adapter is registered in the same registry the hub's manager and router read, so it is
served at once (hot add), without a restart. Pure handlers and a module-level ``demo``.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator

import gradio as gr
import pandas as pd

from apps import services
from apps.training import elapsed, watch_training
from apps.ui import user_error
from apps.uploads import check_upload
from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

TITLE = "Adapter admin"
PRESETS = ("tiny", "quick", "default")
REGISTRY_COLUMNS = ["adapter", "versions", "aliases", "base fingerprint", "metrics"]
MAX_COMPARE_TOKENS = 256

# command-line advice in the registry's and trainer's messages, as this page gives it
ADMIN_WORDS = {"`dsuite adapters train --name NAME --data FILE.jsonl`": "the Train section of this page"}


def registry_table() -> pd.DataFrame:
    """One row per registered adapter: ``name@latest``, versions, aliases, base fingerprint, metrics."""
    rows = [
        [
            f"{row['name']}@{row['latest']}",
            ", ".join(str(v) for v in row["versions"]),
            ", ".join(f"{alias}→{version}" for alias, version in sorted(row["aliases"].items())),
            row["base_fingerprint"],
            json.dumps(row["metrics"], sort_keys=True),
        ]
        for row in services.registry().list()
    ]
    return pd.DataFrame(rows, columns=REGISTRY_COLUMNS)


def adapter_choices() -> list[str]:
    """The registered adapter names, for the pickers."""
    return services.registry().names()


def adapter_details(spec: str | None) -> tuple[dict, str]:
    """Everything recorded about one adapter version (meta, config) and its data card markdown.

    Raises:
        gr.Error: no adapter chosen, or an unknown one (the message names what exists).
    """
    if not spec:
        raise user_error("Choose an adapter first: the registry list is above.")
    try:
        shown = services.registry().show(spec)
    except DSuiteError as exc:
        raise user_error(exc, controls=ADMIN_WORDS) from exc
    card = shown.pop("data_card", "") or "_No data card was recorded._"
    shown["folder"] = shown.pop("path", "")  # a top-level "path" would read as a file to download
    return shown, card


def _heldout_eval(data_path: str, config) -> callable:
    """An ``eval_fn`` for ``train_adapter``: held-out NLL per token under the base and under the adapter."""
    from adapters import GenerationRequest, heldout_examples

    held = heldout_examples(data_path, config)

    def evaluate(manager, key: str) -> dict:
        requests = [GenerationRequest(messages=list(e.messages)) for e in held]
        options = [[e.completion] for e in held]
        base = manager.score_batch(requests, options, normalize=True)
        tuned = manager.score_batch(
            [GenerationRequest(messages=list(e.messages), adapter=key) for e in held], options, normalize=True
        )
        mean = lambda scores: -sum(s[0] for s in scores) / max(1, len(scores))  # noqa: E731
        return {"heldout_nll_base": round(mean(base), 4), "heldout_nll_adapter": round(mean(tuned), 4),
                "heldout_records": len(held)}

    return evaluate


def train(file, name: str, preset: str, max_steps: float | None = None,
          progress: gr.Progress = gr.Progress()) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame]]:  # noqa: B008
    """Train a LoRA adapter on an uploaded JSONL, evaluate it, register it; the hub serves it at once.

    Args:
        file: the uploaded ``.jsonl`` of ``{"messages": [...]}`` or ``{"prompt", "completion"}`` records.
        name: the adapter name (a new name, or a new version of an existing one).
        preset: ``tiny`` (a few steps, a demo), ``quick`` or ``default`` (one epoch).
        max_steps: stop after this many optimizer steps (0 or empty: the preset's own length).

    Yields:
        ``(status markdown, loss curve, registry table)`` as training advances.

    Raises:
        gr.Error: a bad file, name or preset, with what to fix.
    """
    from adapters import LoraTrainConfig, load_examples, train_adapter
    from adapters.registry import check_name

    path = None  # the server's copy of the upload, once checked
    try:
        path = check_upload(file, (".jsonl",), "training records")
        name = (name or "").strip()
        check_name(name)
        if preset not in PRESETS:
            raise DSuiteError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
        config = LoraTrainConfig.preset(preset)
        if max_steps:
            config = config.with_(max_steps=int(max_steps))
        examples = load_examples(path)
        if len(examples) < 2:
            raise DSuiteError(f"'{path.name}' has {len(examples)} record; training needs at least 2 "
                              "(one is held out for evaluation).")
    except DSuiteError as exc:
        raise user_error(exc, upload=path, controls=ADMIN_WORDS) from exc
    started = time.perf_counter()
    loss_curve = pd.DataFrame({"step": [], "loss": []})
    status = f"Training **{name}** on {len(examples)} records (preset `{preset}`)..."
    yield status, loss_curve, registry_table()
    run = functools.partial(
        train_adapter, name, path, base=services.base(), config=config, registry=services.registry(),
        eval_fn=_heldout_eval(str(path), config), progress=True,
    )
    snapshot = None
    for snapshot in watch_training(run, f"train {name}"):
        if snapshot.done:
            break
        loss_curve = pd.DataFrame(snapshot.losses, columns=["step", "loss"])
        progress((snapshot.step, snapshot.total or None), desc="training", unit="steps")
        status = f"Training **{name}**: step {snapshot.step}/{snapshot.total}, {elapsed(started)}"
        yield status, loss_curve, registry_table()
    if snapshot.error is not None:
        if isinstance(snapshot.error, DSuiteError):
            raise user_error(snapshot.error, controls=ADMIN_WORDS) from snapshot.error
        logger.exception("training %s failed", name, exc_info=snapshot.error)
        raise gr.Error(f"Training {name} failed: {snapshot.error}. See the server log for details.")
    ref = snapshot.result
    loss_curve = recorded_losses(ref.meta) if ref.meta.get("training", {}).get("losses") else loss_curve
    evaluation = evaluation_line(ref.meta.get("metrics", {}))
    status = (
        f"Registered **{ref.key}** in {elapsed(started)} — {evaluation}. "
        "The hub serves it now, no restart needed."
    )
    yield status, loss_curve, registry_table()


def recorded_losses(meta: dict) -> pd.DataFrame:
    """The loss of every optimizer step, as training recorded it (the live curve reads the progress bar's
    running average between polls, so it can miss steps)."""
    losses = meta["training"]["losses"]
    return pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses})


def evaluation_line(metrics: dict) -> str:
    """The evaluation for the status line, each figure named for what it is."""
    base, tuned = metrics.get("heldout_nll_base"), metrics.get("heldout_nll_adapter")
    records = metrics.get("heldout_records")
    on = f" on {records} held-out records" if records else ""
    loss = f"held-out loss per token{on} (lower is better): base {base} -> adapter {tuned}"
    parts = [loss] if tuned else []
    if "heldout_nll" in metrics:
        trainer = metrics["heldout_nll"]
        parts.append(f"the trainer's held-out loss {trainer} (over all tokens, not per record)")
    named = {"heldout_nll_base", "heldout_nll_adapter", "heldout_nll", "heldout_records"}
    parts += [f"{key} {value}" for key, value in sorted(metrics.items()) if key not in named]
    return "evaluation: " + ", ".join(parts) if parts else "no evaluation recorded"


def rollback(name: str | None) -> tuple[str, pd.DataFrame]:
    """Move ``name@latest`` back to its previous version; the hub serves that version from the next request.

    Raises:
        gr.Error: no adapter chosen, or no earlier version.
    """
    base_name = (name or "").partition("@")[0].strip()
    if not base_name:  # nothing chosen, or only spaces / a version such as "@3" (an API call)
        raise user_error(f"Choose an adapter to roll back (got {name!r}); pick one in the adapter list.")
    from adapters.registry import undo_hint

    try:
        registry = services.registry()
        before = registry.resolve(f"{base_name}@latest")
        ref = registry.rollback(base_name)
    except DSuiteError as exc:
        raise user_error(exc, controls=ADMIN_WORDS) from exc
    status = f"`{base_name}@latest` now serves **{ref.key}** (was {before.key}; `{undo_hint(before)}`)."
    return status, registry_table()


def compare(prompt: str, adapter: str | None, max_new_tokens: float = 64) -> tuple[str, str]:
    """The same prompt answered by the bare base and by ``adapter``, in one batched forward pass.

    Raises:
        gr.Error: an empty prompt, no adapter chosen, or too many tokens asked for.
    """
    from adapters import GenerationRequest

    if not prompt or not prompt.strip():
        raise user_error("Type a prompt to compare: the prompt box is empty.")
    if not adapter:
        raise user_error("Choose an adapter to compare with the base.")
    if not 1 <= int(max_new_tokens) <= MAX_COMPARE_TOKENS:
        raise user_error(f"Max new tokens must be between 1 and {MAX_COMPARE_TOKENS}, got {max_new_tokens}.")
    try:
        base, tuned = services.manager().generate([
            GenerationRequest(prompt=prompt.strip(), max_new_tokens=int(max_new_tokens)),
            GenerationRequest(prompt=prompt.strip(), adapter=adapter, max_new_tokens=int(max_new_tokens)),
        ])
    except DSuiteError as exc:
        raise user_error(exc, controls=ADMIN_WORDS) from exc
    return base.text.strip(), tuned.text.strip()


def chosen(name: str | None):
    """Gradio validator of the adapter dropdown."""
    return gr.validate(bool(name), "Choose an adapter first.")


def _refresh() -> tuple[pd.DataFrame, dict, dict]:
    choices = adapter_choices()
    return registry_table(), gr.update(choices=choices), gr.update(choices=choices)


with gr.Blocks(title=f"DomainSuite — {TITLE}") as demo:
    gr.Markdown(f"## {TITLE}\nThe registered adapters; train a new one from your own data; roll back; "
                "compare an adapter with the base. A registered adapter is served at once.")
    table = gr.Dataframe(headers=REGISTRY_COLUMNS, label="Registry", interactive=False, elem_id="registry")
    with gr.Row():
        picked = gr.Dropdown(label="Adapter", choices=[], allow_custom_value=True, elem_id="admin-adapter")
        refresh_btn = gr.Button("Refresh", size="sm")
        details_btn = gr.Button("Show details", size="sm")
        rollback_btn = gr.Button("Roll back latest", size="sm", variant="stop")
    rollback_status = gr.Markdown()
    with gr.Accordion("Details", open=False) as details_box:
        meta = gr.JSON(label="Meta, settings, metrics")
        card = gr.Markdown()
    gr.Markdown("### Train a new adapter")
    with gr.Row():
        upload = gr.File(label="Training records (.jsonl)", file_types=[".jsonl"], elem_id="train-file")
        with gr.Column():
            new_name = gr.Textbox(label="Adapter name", placeholder="e.g. astronomy", elem_id="train-name")
            preset = gr.Dropdown(list(PRESETS), value="tiny", label="Preset")
            steps = gr.Number(value=0, precision=0, label="Max steps (0 = preset)")
            train_btn = gr.Button("Train, evaluate and register", variant="primary", elem_id="train-btn")
    train_status = gr.Markdown(elem_id="train-status")
    loss_plot = gr.LinePlot(x="step", y="loss", title="Training loss", height=220)
    gr.Markdown("### Base vs adapter")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", scale=3)
        compare_adapter = gr.Dropdown(label="Adapter", choices=[], allow_custom_value=True)
        compare_tokens = gr.Slider(8, MAX_COMPARE_TOKENS, value=48, step=8, label="Max new tokens")
    compare_btn = gr.Button("Compare")
    with gr.Row():
        base_answer = gr.Textbox(label="Base model", lines=4)
        adapter_answer = gr.Textbox(label="Adapter", lines=4)

    demo.load(_refresh, None, [table, picked, compare_adapter], api_name="admin_refresh")
    refresh_btn.click(_refresh, None, [table, picked, compare_adapter], api_visibility="private")
    details = details_btn.click(adapter_details, picked, [meta, card], api_name="admin_details",
                                validator=chosen)
    details.success(lambda: gr.Accordion(open=True), None, details_box, api_visibility="private")
    # refused at the dropdown when nothing is chosen (an error inside would badge the registry table)
    rollback_btn.click(rollback, picked, [rollback_status, table], api_name="admin_rollback",
                       validator=chosen)
    train_btn.click(train, [upload, new_name, preset, steps], [train_status, loss_plot, table],
                    api_name="admin_train", concurrency_limit=1).then(
        _refresh, None, [table, picked, compare_adapter], api_visibility="private")
    compare_btn.click(compare, [prompt, compare_adapter, compare_tokens], [base_answer, adapter_answer],
                      api_name="admin_compare")

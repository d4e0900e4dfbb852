"""`dsuite adapters ...`: train, inspect and manage LoRA adapters; the continual-learning report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from apps.cli.options import BaseOption, JsonOption

app = typer.Typer(help="Train, register and manage LoRA adapters.", no_args_is_help=True)

RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry folder (default $DSUITE_REGISTRY, else $DSUITE_ADAPTERS, else $DSUITE_HOME/adapters; "
        "the hub reads the same variables).",
        show_default=False,
    ),
]


def _registry(root: str | None, create: bool = False):
    """The registry ``--registry`` names (or the default one). A named folder that does not exist is refused
    unless the command adds adapters (``create``): a typo would otherwise read as an empty registry."""
    from adapters.registry import Registry
    from core_model.errors import DSuiteError

    if root is not None and str(root).strip() and not create and not Path(root).expanduser().is_dir():
        raise DSuiteError(
            f"No adapter registry at '{root}' (--registry): the folder does not exist. Check the path, or "
            "leave --registry out for the default registry."
        )
    return Registry(root)


LIST_SHOWN = 8  # a longer list (per-step losses, learning rates) is summarised unless --json


def _echo(record, as_json: bool) -> None:
    """Print a record: one JSON line with ``--json``; else one line per field, a field that is a dict one
    line per entry below it (empty entries left out), long lists summarised (``_brief``)."""
    if as_json:
        typer.echo(json.dumps(record, default=str))
    elif isinstance(record, dict):
        for key, value in record.items():
            if isinstance(value, dict) and value:
                typer.echo(f"{key:>18}:")
                for inner, item in value.items():
                    if item not in (None, "", [], {}):
                        typer.echo(f"{'':>20}{inner}: {_brief(item)}")
            else:
                typer.echo(f"{key:>18}: {_brief(value)}")
    else:
        typer.echo(record)


def _brief(value) -> str:
    """A value for the human-readable output: lists longer than ``LIST_SHOWN`` as their length and, for
    numbers, first / last / min / max."""
    if isinstance(value, list) and len(value) > LIST_SHOWN:
        numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        if len(numbers) == len(value):
            return (
                f"{len(value)} values, first {value[0]:.4g}, last {value[-1]:.4g}, min {min(numbers):.4g}, "
                f"max {max(numbers):.4g} (--json lists them)"
            )
        shown = json.dumps(value[:LIST_SHOWN], default=str)[:-1]
        return f"{shown}, ... {len(value)} items in all] (--json lists them)"
    return json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)


def _read_card(path: Path | None) -> str | None:
    """The text of a --data-card file (``None`` when none is given)."""
    from core_model.errors import DSuiteError

    if path is None:
        return None
    if not path.is_file():
        raise DSuiteError(
            f"Data card '{path}' not found{' (it is a folder)' if path.is_dir() else ''}; give a markdown "
            "file, or leave --data-card out to store a generated card."
        )
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DSuiteError(f"Data card '{path}' is not UTF-8 text ({exc.reason}); save it as UTF-8.") from exc
    except OSError as exc:
        raise DSuiteError(f"Cannot read data card '{path}': {exc}.") from exc


def _preset_values(key: str) -> str:
    from adapters.config import PRESETS

    return ", ".join(f"{name}={getattr(config, key)}" for name, config in PRESETS.items())


def _preset_help() -> str:
    from adapters.config import PRESETS

    tiny = PRESETS["tiny"]
    return (
        "Settings preset: default (one epoch, r=16), quick (one epoch, higher lr, shorter records) or tiny "
        f"(tests and smoke runs: exactly {tiny.max_steps} optimizer steps unless --max-steps, r={tiny.r}). "
        "Every option below that is left out takes the preset's value."
    )


def _from_preset(what: str, key: str) -> str:
    return f"{what} (default: from --preset: {_preset_values(key)})."


@app.command()
def train(
    name: Annotated[
        str, typer.Option("--name", "--domain", help="Adapter (domain) name; a new version is registered.")
    ],
    data: Annotated[
        Path, typer.Option("--data", help="JSONL of {messages} or {prompt, completion} records.")
    ],
    base: BaseOption = None,
    registry: RegistryOption = None,
    preset: Annotated[str, typer.Option(help=_preset_help())] = "default",
    r: Annotated[int | None, typer.Option("--r", min=1, help=_from_preset("LoRA rank", "r"))] = None,
    alpha: Annotated[int | None, typer.Option(min=1, help=_from_preset("LoRA alpha", "alpha"))] = None,
    dropout: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help=_from_preset("LoRA dropout", "dropout"))
    ] = None,
    target_modules: Annotated[
        str | None,
        typer.Option(help="Comma-separated Linear modules (default: from --preset: q_proj,v_proj)."),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(help="Decoder layers to adapt: '18-29' or '20,22,24' (default all; fewer: faster)."),
    ] = None,
    epochs: Annotated[
        float | None, typer.Option(min=0.0, help=_from_preset("Passes over the training split", "epochs"))
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(
            min=0,
            help=_from_preset(
                "Train exactly this many optimizer steps, whatever --epochs says; 0: --epochs decides",
                "max_steps",
            )
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help=_from_preset("Learning rate", "lr"))] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help=_from_preset("Records per step", "batch_size"))
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(
            min=8,
            help=_from_preset(
                "Tokens per record (prompt + completion); longer records are truncated, with a warning "
                "that counts them: the prompt keeps at least half (cut in the middle), the completion its "
                "start",
                "max_length",
            )
        ),
    ] = None,
    eval_fraction: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help=_from_preset("Held-out share of the records", "eval_fraction")),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help=_from_preset("Random seed", "seed"))] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run (same data, settings and base). If that run already finished, "
            "print its version and register nothing.",
        ),
    ] = False,
    skip_bad_rows: Annotated[
        bool,
        typer.Option(
            "--skip-bad-rows",
            help="Train on the valid records and list the bad ones (default: refuse the file).",
        ),
    ] = False,
    data_card: Annotated[
        Path | None, typer.Option(help="Markdown data card to store with the adapter.")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="cpu, cuda or cuda:N (default: the first GPU PyTorch sees, else the CPU)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Train a LoRA adapter on a JSONL file and register it as NAME@<next version>."""
    from adapters.config import LoraTrainConfig

    changes = {
        k: v
        for k, v in {
            "r": r,
            "alpha": alpha,
            "dropout": dropout,
            "target_modules": target_modules,
            "layers": layers,
            "epochs": epochs,
            "max_steps": max_steps,
            "lr": lr,
            "batch_size": batch_size,
            "max_length": max_length,
            "eval_fraction": eval_fraction,
            "seed": seed,
        }.items()
        if v is not None
    }
    config = LoraTrainConfig.from_dict({**LoraTrainConfig.preset(preset).to_dict(), **changes})
    card = _read_card(data_card)
    store = _registry(registry, create=True)
    before = set(store.versions(name)) if resume else set()

    import torch

    from adapters.train import checkpoint_dir, train_adapter

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        ref = train_adapter(
            name,
            data,
            base=base,
            config=config,
            registry=store,
            resume=resume,
            data_card=card,
            skip_bad_rows=skip_bad_rows,
            device=device,
        )
    except KeyboardInterrupt:
        kept = checkpoint_dir(store, name).is_dir()
        typer.echo(
            "\nInterrupted: nothing registered. "
            + (
                "The last checkpoint is kept: rerun the same command with --resume to go on from it "
                "(without --resume a new run starts from step 0 and replaces it)."
                if kept
                else "No checkpoint had been written yet; rerun the same command to start again."
            ),
            err=True,
        )
        raise typer.Exit(130) from None
    training = ref.meta["training"]
    if ref.version in before:
        typer.echo(
            f"{ref.key} was already trained from this data, these settings and this base: nothing trained, "
            "nothing registered (train without --resume for another version).",
            err=True,
        )
    else:
        typer.echo(
            f"trainable parameters: {training['trainable_params']:,} of {training['total_params']:,} "
            f"({100 * training['trainable_share']:.3f}%)",
            err=True,
        )
    _echo(
        {
            "adapter": ref.key,
            "path": str(ref.path),
            "metrics": ref.meta["metrics"],
            "trainable_share": training["trainable_share"],
            "seconds": training["seconds"],
            "already_registered": ref.version in before,
            "skipped_bad_records": training.get("skipped_bad_records", 0),
            "truncated_records": training.get("truncated_records", 0),
        },
        as_json,
    )


@app.command("list")
def list_(registry: RegistryOption = None, as_json: JsonOption = False) -> None:
    """List the registered adapters, their versions and aliases."""
    rows = _registry(registry).list()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no adapters registered")
    for row in rows:
        aliases = ", ".join(f"{k}->{v}" for k, v in row["aliases"].items())
        typer.echo(f"{row['name']}: versions {row['versions']} ({aliases}) metrics {row['metrics']}")


@app.command()
def show(
    spec: Annotated[str, typer.Argument(help="name, name@version or name@alias")],
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show everything recorded about one adapter version."""
    _echo(_registry(registry).show(spec), as_json)


@app.command()
def register(
    name: Annotated[str, typer.Option("--name", "--domain", help="Adapter name, the domain it serves.")],
    folder: Annotated[
        Path, typer.Option("--from", help="peft adapter folder (safetensors + adapter_config.json).")
    ],
    base: BaseOption = None,
    registry: RegistryOption = None,
    data_card: Annotated[Path | None, typer.Option(help="Markdown data card.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Register an existing peft LoRA folder trained on the base (its fingerprint is recorded).

    The folder is checked first: its LoRA modules and shapes must fit the base's Linear modules (read from
    the base's config.json), so an adapter trained on another base is refused here, not when it is served.
    """
    from adapters.registry import read_peft_folder
    from core_model.base import resolve_base_path
    from core_model.fingerprint import fingerprint

    card = _read_card(data_card) or ""
    read_peft_folder(folder)  # a missing or broken folder is reported before the base is fingerprinted
    base_path = resolve_base_path(base)
    ref = _registry(registry, create=True).register_folder(
        name, folder, base_fingerprint=fingerprint(base_path), check_base=base_path, data_card=card
    )
    _echo({"adapter": ref.key, "path": str(ref.path)}, as_json)


@app.command()
def remove(
    spec: Annotated[str, typer.Argument(help="name (all versions) or name@version")],
    registry: RegistryOption = None,
) -> None:
    """Remove an adapter version (or all versions) from the registry; say which aliases moved.

    Version numbers are never reused: the next registration of the name gets a new number.
    """
    removed = _registry(registry).remove(spec)
    for key in removed:
        typer.echo(f"removed {key}")
    name = removed[0].partition("@")[0]
    for alias_name, (old, new) in sorted(removed.aliases.items()):
        if new is None:
            typer.echo(f"dropped alias {name}@{alias_name} (was {name}@{old}; no version is left)")
        else:
            typer.echo(f"moved alias {name}@{alias_name}: {name}@{old} -> {name}@{new}")


@app.command()
def alias(
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="Alias, e.g. stable.")],
    version: Annotated[str, typer.Argument(help="Version number (or another alias).")],
    registry: RegistryOption = None,
) -> None:
    """Point NAME@ALIAS at a version."""
    ref = _registry(registry).alias(name, alias_name, version)
    typer.echo(f"{name}@{alias_name} -> {ref.key}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Adapter name.")],
    alias_name: Annotated[str, typer.Option("--alias", help="Alias to move back.")] = "latest",
    registry: RegistryOption = None,
) -> None:
    """Move NAME@latest (or --alias) back to the previous version (prints how to undo it)."""
    from adapters.registry import undo_hint

    reg = _registry(registry)
    before = reg.resolve(f"{name}@{alias_name}")
    ref = reg.rollback(name, alias_name)
    typer.echo(f"{name}@{alias_name} -> {ref.key} (was {before.key}; {undo_hint(before, alias_name)})")


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt.")],
    adapter: Annotated[str | None, typer.Option(help="Adapter spec (default: the bare base).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="At most this many new tokens.")] = 64,
    base: BaseOption = None,
    registry: RegistryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer one prompt with an adapter (or the bare base)."""
    from adapters.manager import AdapterManager
    from adapters.requests import GenerationRequest
    from core_model import load_base

    manager = AdapterManager(load_base(base), _registry(registry))
    result = manager.generate(
        [GenerationRequest(prompt=prompt, adapter=adapter, max_new_tokens=max_new_tokens)]
    )[0]
    _echo({"adapter": result.adapter, "text": result.text} if as_json else result.text, as_json)


def _learner(base, registry, state_dir, max_eval, tasks_file, preset):
    from adapters.config import LoraTrainConfig
    from adapters.continual import ContinualLearner
    from adapters.tasks import read_rows
    from core_model import load_base

    ood_cal, ood_test = [], []
    if tasks_file is not None:
        folder = Path(tasks_file).parent
        if (folder / "ood.calibration.jsonl").is_file():
            ood_cal = [r["text"] for r in read_rows(folder / "ood.calibration.jsonl")]
        if (folder / "ood.test.jsonl").is_file():
            ood_test = [r["text"] for r in read_rows(folder / "ood.test.jsonl")]
    return ContinualLearner(
        load_base(base),
        _registry(registry),
        config=LoraTrainConfig.preset(preset),
        state_dir=state_dir,
        max_eval=max_eval,
        ood_calibration=ood_cal,
        ood_test=ood_test,
    )


TasksOption = Annotated[
    Path,
    typer.Option(
        "--tasks", help="tasks.json naming each domain's instruction, labels, train and test files."
    ),
]
StateOption = Annotated[
    Path | None, typer.Option("--state", help="Continual-run state folder (default <registry>/.continual).")
]


@app.command("continual-run")
def continual_run(
    tasks: TasksOption = Path("data/adapters_demo/tasks.json"),
    domains: Annotated[
        str | None, typer.Option(help="Comma-separated order (default: all, file order).")
    ] = None,
    base: BaseOption = None,
    registry: RegistryOption = None,
    state: StateOption = None,
    preset: Annotated[str, typer.Option(help="LoRA settings preset.")] = "quick",
    max_eval: Annotated[int | None, typer.Option(help="Evaluate at most N test rows per domain.")] = None,
    max_train: Annotated[int | None, typer.Option(help="Train on at most N rows per domain.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the final report JSON here.")] = None,
) -> None:
    """Add the domains of a tasks.json one by one with add_domain, then print the continual report."""
    import torch

    from adapters.tasks import load_tasks

    torch.set_num_threads(min(2, torch.get_num_threads()))
    specs = load_tasks(tasks)
    order = [d.strip() for d in domains.split(",")] if domains else list(specs)
    unknown = [d for d in order if d not in specs]
    if unknown:
        from core_model.errors import DSuiteError

        raise DSuiteError(f"Domains {unknown} are not in {tasks}; it has {list(specs)}.")
    learner = _learner(base, registry, state, max_eval, tasks, preset)
    for name in order:
        task = specs[name]
        if max_train:
            task = dataclasses.replace(task, train=task.train[:max_train])
        step = learner.add_domain(name, task)
        typer.echo(
            json.dumps(
                {
                    k: step[k]
                    for k in (
                        "domain",
                        "adapter",
                        "accuracy",
                        "base_accuracy",
                        "accepted",
                        "router_accuracy",
                        "gates",
                        "seconds",
                    )
                }
            )
        )
    report = {
        **learner.report(),
        "settings": {
            "preset": preset,
            "max_train": max_train,
            "max_eval": max_eval,
            "base": learner.base.fingerprint,
            "base_path": learner.base.name,
        },
    }
    text = json.dumps(report, indent=1)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)


@app.command("continual-report")
def continual_report(
    base: BaseOption = None,
    registry: RegistryOption = None,
    state: StateOption = None,
    tasks: Annotated[
        Path | None, typer.Option("--tasks", help="tasks.json (for its out-of-domain files).")
    ] = None,
    max_eval: Annotated[int | None, typer.Option(help="Evaluate at most N test rows per domain.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Print the accuracy matrix, average accuracy, BWT, routed vs told accuracy and router figures."""
    report = _learner(base, registry, state, max_eval, tasks, "quick").report()
    if as_json:
        typer.echo(json.dumps(report))
        return
    order = report["domains"]
    typer.echo("accuracy after each addition (rows) on each domain (columns):")
    typer.echo("after \\ on".ljust(18) + "".join(d[:16].rjust(17) for d in order))
    for name, row in zip(order, report["matrix"], strict=True):
        typer.echo(name[:16].ljust(18) + "".join(("" if v is None else f"{v:.3f}").rjust(17) for v in row))
    typer.echo("base model".ljust(18) + "".join(f"{report['base_accuracy'][d]:.3f}".rjust(17) for d in order))
    typer.echo("routed".ljust(18) + "".join(f"{report['routed_accuracy'][d]:.3f}".rjust(17) for d in order))
    for key in (
        "average_accuracy",
        "bwt",
        "routed_average",
        "routed_over_told",
        "router_accuracy",
        "abstention_rate",
        "ood_abstention_rate",
        "router_threshold",
    ):
        value = report[key]
        typer.echo(f"{key:>20}: {value if value is None else round(value, 4)}")

"""`dsuite cs ...`: the customer-service assistant in the terminal, and its training commands."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from apps.cli.options import BaseOption

app = typer.Typer(help="Customer service: chat, intents, FAQ, dialog state tracking.", no_args_is_help=True)

GenerateOption = Annotated[
    bool, typer.Option("--generate/--no-generate", help="Write a model reply when no FAQ answer fits.")
]
AdapterOption = Annotated[str | None, typer.Option("--adapter", help="Adapter for generated replies.")]
PrecisionOption = Annotated[
    str,
    typer.Option("--precision", help="Engine weights for replies without an adapter: fp32, int8 or int4."),
]


def _turn_json(turn) -> str:
    record = turn.to_dict()
    record["faq_sources"] = [
        {"id": h["id"], "question": h["question"], "score": round(h["score"], 3)}
        for h in record["faq_sources"]
    ]
    return json.dumps(record, ensure_ascii=False)


@app.command()
def chat(
    base: BaseOption = None,
    generate: GenerateOption = False,
    adapter: AdapterOption = None,
    precision: PrecisionOption = "int8",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per turn.")] = False,
) -> None:
    """Talk to the support assistant; one message per line, an empty line or Ctrl-D ends. Where no FAQ answer
    fits it asks for more, or with --generate (as the app's checkbox) the model writes the reply; Ctrl-C while
    a reply is being written stops that reply and the conversation goes on."""
    from apps.cli import is_utf8  # the package imports this module: read it once both are loaded
    from domains.customer_service.session import CustomerServiceSession

    session = CustomerServiceSession(generate=generate, adapter=adapter, base=base, precision=precision)
    interactive = sys.stdin.isatty()
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="surrogateescape")  # a line that is not UTF-8 is refused below
    while True:
        if interactive:
            typer.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line or not line.strip():
            break
        if not is_utf8(line):
            typer.secho("That message is not UTF-8 text; type it again (or set a UTF-8 locale).", err=True)
            continue
        if as_json:
            turn = session.respond(line)
            typer.echo(_turn_json(turn))
            continue
        typer.echo("assistant> ", nl=False)
        shown = ""
        with _ctrl_c_calls(session.stop_reply):
            for turn in session.respond_stream(line):  # a generated reply appears as it is written
                if turn.reply.startswith(shown):
                    typer.echo(turn.reply[len(shown) :], nl=False)
                    shown = turn.reply
        if shown != turn.reply:  # the finished reply is not a continuation (e.g. it fell back to asking)
            typer.echo(("\n" if shown else "") + turn.reply, nl=False)
        typer.echo(" [reply stopped]" if turn.stopped else "")
        detail = f"   [intent {turn.intent} p={turn.confidence:.2f}; source {turn.source}; state {turn.state}"
        if turn.escalation:
            detail += f"; ESCALATED ({turn.escalation.reason}: {turn.escalation.detail})"
        typer.echo(detail + "]")
        if turn.escalation:
            break


@contextmanager
def _ctrl_c_calls(action: Callable[[], object]) -> Iterator[None]:
    """Within the block, Ctrl-C (SIGINT) calls ``action`` instead of ending the program."""
    previous = signal.signal(signal.SIGINT, lambda signum, frame: action())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command()
def ask(
    text: Annotated[str, typer.Argument(help="The customer's message.")],
    base: BaseOption = None,
    generate: GenerateOption = False,
    adapter: AdapterOption = None,
    precision: PrecisionOption = "int8",
) -> None:
    """Answer one message and print the turn as JSON (intent, state, FAQ sources, escalation)."""
    from core_model.errors import DSuiteError
    from domains.customer_service.session import CustomerServiceSession

    if not text.strip():
        raise DSuiteError(
            "cs ask needs a customer message: pass the text to answer, e.g. "
            '`dsuite cs ask "Where is my order?"`.'
        )
    session = CustomerServiceSession(generate=generate, adapter=adapter, base=base, precision=precision)
    typer.echo(_turn_json(session.respond(text)))


@app.command("train-intents")
def train_intents_command(
    dataset: Annotated[str, typer.Option("--dataset", help="banking77, clinc150 or bitext.")],
    epochs: Annotated[
        int | None, typer.Option("--epochs", help="Passes over the train split (default: the recipe's).")
    ] = None,
    split_layer: Annotated[
        int | None, typer.Option("--split-layer", help="First MiniLM layer that is tuned (default: recipe).")
    ] = None,
    heads: Annotated[
        int | None,
        typer.Option("--heads", min=1, help="LoRA + head pairs (other seeds), averaged (default: recipe)."),
    ] = None,
    oos_folds: Annotated[
        int | None,
        typer.Option(
            "--oos-folds",
            min=0,
            help="Extra fits that score the OOS training queries out of fold for the threshold; 0: "
            "validation alone (default: recipe).",
        ),
    ] = None,
) -> None:
    """Train an intent classifier (the data set's recipe) and save it under data/customer_service/intents/."""
    from domains.customer_service.intent_training import recipe, train_intents

    chosen = {"epochs": epochs, "split_layer": split_layer, "heads": heads, "oos_folds": oos_folds}
    overrides = {k: v for k, v in chosen.items() if v is not None}
    meta = train_intents(dataset, recipe(dataset, **overrides))
    typer.echo(json.dumps({"metrics": meta["metrics"], "baseline_metrics": meta["baseline_metrics"]}))


@app.command("build-faq")
def build_faq() -> None:
    """Index the Bitext train-split questions (the test business's FAQ) for retrieval."""
    from domains.customer_service.faq import FaqIndex
    from eval.data import bitext

    folder = FaqIndex.build(bitext.load("train")).save()
    typer.echo(json.dumps({"folder": str(folder)}))


@app.command("dst-data")
def dst_data(
    out: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Cap on each part, generator and verifier records (default: all)."
        ),
    ] = None,
) -> None:
    """Write the customer-service adapter's training set from the MultiWOZ dev dialogues not kept for
    validation: state updates (generator) and candidate decisions (verifier)."""
    from domains.customer_service.dst_training import build_multitask_set

    typer.echo(json.dumps({"path": str(build_multitask_set(out, limit=limit))}))


@app.command("train-dst")
def train_dst(
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="MultiWOZ dev turns to train on (default: recipe).")
    ] = None,
    epochs: Annotated[
        float | None, typer.Option("--epochs", min=0.01, help="Passes over them (default: the recipe's).")
    ] = None,
    base: BaseOption = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A training set written earlier by `dsuite cs dst-data` (e.g. on a machine with the "
            "MultiWOZ copy), instead of writing one.",
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: a GPU if PyTorch sees one).")
    ] = None,
) -> None:
    """Train the DST adapter (the recipe), register it and ship a copy in data/customer_service/adapter/.

    The recipe (every turn and candidate of the training dialogues, 2 epochs) takes about 6 minutes on one
    GPU; on 2 CPU cores it would take days, so pass --limit there."""
    from domains.customer_service.dst_training import train_dst_adapter

    overrides = {k: v for k, v in {"limit": limit, "epochs": epochs}.items() if v is not None}
    result = train_dst_adapter(base=base, data=data, device=device, **overrides)
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "training"}))


@app.command("dst-ceiling")
def dst_ceiling(
    split: Annotated[
        str, typer.Option("--split", help="validation (every 8th dev dialogue), dev or test.")
    ] = "validation",
) -> None:
    """Joint goal accuracy of the rules, and with gold keep/drop decisions of their candidates (the ceiling
    of a verifier on top of them)."""
    from domains.customer_service.dst_adapter import split_dialogues
    from domains.customer_service.dst_candidates import ceiling
    from eval.data import multiwoz

    dialogues = split_dialogues(split)
    typer.echo(json.dumps({"split": split, **ceiling([multiwoz.user_turns(d) for d in dialogues])}))


@app.command("verifier-thresholds")
def verifier_thresholds(
    adapter: Annotated[str, typer.Option("--adapter", help="The adapter that decides.")] = "customer_service",
    base: BaseOption = None,
    write: Annotated[
        bool, typer.Option("--write", help="Store them in data/customer_service/dst_verifier.json.")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Only the first N validation dialogues (a quick look; not with --write)."
        ),
    ] = None,
) -> None:
    """Choose the DST verifier's rule and offer thresholds on the validation dialogues (every 8th MultiWOZ
    dev dialogue, never trained on) and print them with the joint goal accuracy they give there."""
    from adapters import AdapterManager, Registry
    from core_model import load_base
    from core_model.errors import DSuiteError
    from domains.customer_service.dst_adapter import gold_state, split_dialogues
    from domains.customer_service.dst_verifier import choose_thresholds, scored_candidates, write_thresholds
    from eval.data import multiwoz

    if write and limit is not None:
        raise DSuiteError("--write stores thresholds chosen on all validation dialogues; drop --limit.")
    manager = AdapterManager(load_base(base), Registry())
    ref = manager.resolve(adapter)
    dialogues = [multiwoz.user_turns(d) for d in split_dialogues("validation")[:limit]]
    scored = scored_candidates(manager, adapter, dialogues)
    golds = [[gold_state(t) for t in turns] for turns in dialogues]
    choice = choose_thresholds(scored, golds)
    decisions = [(c, m) for turns in scored for turn in turns for c, m in turn]
    right = sum((m > 0) == bool(c.correct) for c, m in decisions)
    report = {
        "adapter": ref.key if ref is not None else None,
        "turns": sum(len(g) for g in golds),
        "candidates": len(decisions),
        "accuracy_at_0": round(right / max(1, len(decisions)), 4),
        **choice,
    }
    if write:
        write_thresholds(
            choice,
            f"Chosen on validation ({report['turns']} turns, adapter {report['adapter']}): JGA "
            f"{choice['jga']} vs the rules' {choice['rules_jga']} (`dsuite cs verifier-thresholds --write`).",
        )
    typer.echo(json.dumps(report, default=str))


DIALOGUE_FORMAT = 'a JSON list of {"system": "...", "user": "..."} turns ("system" may be left out)'


def _read_dialogue(path: Path) -> list[dict]:
    """The turns of a `cs track` dialogue file, checked: a UTF-8 JSON list of objects whose "user" (and
    "system", where given) are strings.

    Raises:
        DSuiteError: the file cannot be read, is not UTF-8 JSON, or a turn is malformed (named by number).
    """
    from core_model.errors import DSuiteError

    try:
        turns = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DSuiteError(
            f"Dialogue '{path}' is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 "
            f"holding {DIALOGUE_FORMAT}."
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise DSuiteError(f"Cannot read dialogue '{path}': {exc}. Give {DIALOGUE_FORMAT}.") from exc
    if not isinstance(turns, list):
        raise DSuiteError(f"Dialogue '{path}' holds {_json_kind(turns)}; give {DIALOGUE_FORMAT}.")
    for number, turn in enumerate(turns, start=1):
        _check_turn(path, number, turn)
    return turns


def _check_turn(path: Path, number: int, turn) -> None:
    """Refuse a dialogue turn that is not an object with a string "user" (and a string "system")."""
    from core_model.errors import DSuiteError

    where = f"Dialogue '{path}', turn {number}"
    if not isinstance(turn, dict):
        raise DSuiteError(f"{where} is {_json_kind(turn)}; each turn must be an object in {DIALOGUE_FORMAT}.")
    if "user" not in turn:
        raise DSuiteError(f'{where} has no "user" key; each turn needs the customer\'s words there.')
    for key in ("user", "system"):
        if key in turn and not isinstance(turn[key], str):
            raise DSuiteError(
                f'{where}: "{key}" must be a string, got {json.dumps(turn[key])}; give {DIALOGUE_FORMAT}.'
            )


def _json_kind(value) -> str:
    """What a parsed JSON value is, in JSON's words (``a number``, ``an object``...)."""
    if isinstance(value, bool):
        return "true/false"
    kinds = {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number"}
    return kinds.get(type(value), "null")


@app.command()
def track(
    dialogue: Annotated[Path, typer.Argument(help="JSON list of {system, user} turns.")],
    adapter: AdapterOption = None,
    base: BaseOption = None,
    rules: Annotated[
        bool, typer.Option("--rules", help="Use the rule baseline instead of the adapter.")
    ] = False,
    generate: Annotated[
        bool,
        typer.Option(
            "--generate",
            help="Let the adapter write each turn's slots instead of deciding the rules' candidates.",
        ),
    ] = False,
) -> None:
    """Print the dialog state after each user turn of a dialogue file (MultiWOZ domains and slots).

    By default the adapter decides which values the rules read in the customer's words, and which values the
    assistant offered, enter the state (the verifier); --generate lets it write them instead."""
    turns = _read_dialogue(dialogue)
    if rules:
        from domains.customer_service.rule_tracker import track_dialogue

        states = track_dialogue(turns)
    else:
        from adapters import AdapterManager, Registry
        from core_model import load_base
        from domains.customer_service.dst_adapter import ADAPTER_NAME, AdapterTracker
        from domains.customer_service.dst_verifier import VerifierTracker

        manager = AdapterManager(load_base(base), Registry())
        kind = AdapterTracker if generate else VerifierTracker
        states = kind(manager, adapter=adapter or ADAPTER_NAME).track([turns])[0]
    for turn, state in zip(turns, states, strict=True):
        typer.echo(json.dumps({"user": turn["user"], "state": state}, ensure_ascii=False))

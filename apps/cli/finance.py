"""`dsuite finance ...`: ask the advisor, stream a market feed, define and extract terms."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from apps.cli.options import BaseOption, JsonOption

app = typer.Typer(help="Finance advisory: advisor, market feeds, term dictionary.", no_args_is_help=True)


@app.command()
def ask(
    question: Annotated[
        list[str], typer.Argument(help="One or more questions, asked in turn (one session).")
    ],
    mode: Annotated[
        str, typer.Option(help="model (the finance adapter drafts) or extractive (no model).")
    ] = "model",
    adapter: Annotated[
        str, typer.Option(help="Adapter that drafts in model mode; 'none' for the bare base.")
    ] = "finance",
    doc: Annotated[
        list[Path] | None, typer.Option(help="User document(s) to index (.txt, .md, .pdf).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the finance advisor; several questions form one multi-turn session."""
    from domains.finance.advisor import FinanceAdvisor

    drafter = None if adapter == "none" else adapter
    if mode == "model":
        _check_adapter(drafter)
    advisor = FinanceAdvisor(mode=mode, adapter=drafter)
    for path in doc or []:
        advisor.add_document(path)
    for text in question:
        answer = advisor.ask(text)
        if as_json:
            typer.echo(json.dumps(answer.to_dict()))
        else:
            typer.echo(f"> {text}\n{answer.text}\n[state] {advisor.state.describe()}")
            typer.echo(f"[grounded] {answer.grounding.ok}  [answered by] {answer.answered_by}\n")


def _check_adapter(adapter: str | None) -> None:
    """Refuse an adapter the registry lacks before any question is answered, as `cs ask` does (the
    advisor would otherwise answer with the bare base); the shipped finance adapter is installed into the
    registry on first use.

    Raises:
        DSuiteError: no adapter, version or alias of that name (the message lists the registered ones).
    """
    if adapter is None:
        return
    from adapters import Registry
    from adapters.shipped import resolve_with_shipped
    from core_model.base import resolve_base_path
    from core_model.fingerprint import fingerprint

    # the fingerprint is cached beside the weights: no need to load the model to refuse a name
    resolve_with_shipped(Registry(), adapter, fingerprint(resolve_base_path(None)))


@app.command()
def feed(
    replay: Annotated[
        Path | None, typer.Option(help="Replay this OHLCV CSV (date,open,high,low,close,volume).")
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Replay the shared history of this symbol (e.g. SPY).")
    ] = None,
    live: Annotated[
        str | None, typer.Option(help="Live daily bars of this symbol via yfinance (optional).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated feed (the default feed).")] = 0,
    bars: Annotated[int, typer.Option(min=1, help="Number of simulated bars.")] = 300,
    tail: Annotated[int, typer.Option(min=0, help="Print only the last N bars (0 = every bar).")] = 5,
    delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait between printed bars (replay pacing).")
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Stream bars from a feed with incrementally computed indicators, then print the final snapshot."""
    from collections import deque

    from domains.finance.feeds import LiveFeed, ReplayFeed, SimulatedFeed
    from domains.finance.market import stream_snapshots

    if sum(x is not None for x in (replay, symbol, live)) > 1:
        from core_model.errors import DSuiteError

        raise DSuiteError("Choose one feed: --replay FILE, --symbol SYM or --live SYM (or none: simulated).")
    if replay is not None:
        source = ReplayFeed(replay)
    elif symbol is not None:
        source = ReplayFeed.shared(symbol)
    elif live is not None:
        source = LiveFeed(live)
    else:
        source = SimulatedFeed(seed=seed, n_bars=bars)
    shown: deque = deque(maxlen=tail or None)
    last = None
    for bar, snapshot in stream_snapshots(source):
        last = snapshot
        line = (
            json.dumps({"bar": bar.to_dict(), "facts": snapshot.facts()})
            if as_json
            else f"{bar.date} {bar.symbol} close {bar.close:.2f} | "
            + ", ".join(
                f"{k} {v}"
                for k, v in snapshot.facts().items()
                if k in ("1-day change", "14-day RSI", "20-day SMA")
            )
        )
        if tail:
            shown.append(line)
        else:
            typer.echo(line)
            time.sleep(delay)
    for line in shown:
        typer.echo(line)
        time.sleep(delay)
    if last is not None:
        typer.echo(json.dumps({"snapshot": last.to_dict()}) if as_json else f"snapshot: {last.summary()}")


@app.command()
def define(
    term: Annotated[str, typer.Argument(help="A term, synonym or abbreviation.")], as_json: JsonOption = False
):
    """Look a term up in the dictionary (FIBO + the project's glossary)."""
    from domains.finance.dictionary import load_dictionary

    entries = load_dictionary().lookup(term) or [load_dictionary().define(term)]
    for entry in entries:
        typer.echo(
            json.dumps(entry.to_dict()) if as_json else f"{entry.term} [{entry.source}]: {entry.definition}"
        )


@app.command()
def extract(
    text: Annotated[str, typer.Argument(help="Text to extract terms from.")], as_json: JsonOption = False
):
    """Extract finance terms, tickers, money, percentages and dates from text."""
    from domains.finance.extraction import extract as run_extract

    mentions = run_extract(text)
    if not mentions:
        typer.echo("[]" if as_json else "No terms, tickers or figures found.")
    for mention in mentions:
        record = mention.to_dict()
        typer.echo(
            json.dumps(record) if as_json else f"{record['label']:>8} {record['text']!r} {record['term']}"
        )


@app.command()
def terms(as_json: JsonOption = False) -> None:
    """How many terms the dictionary holds, by source."""
    from domains.finance.dictionary import load_dictionary

    stats = load_dictionary().stats()
    typer.echo(json.dumps(stats) if as_json else "\n".join(f"{k}: {v}" for k, v in stats.items()))


@app.command("build-index")
def build_index() -> None:
    """Build (once) and cache the faiss index over the dictionary."""
    from domains.finance.retrieval import dictionary_index

    index = dictionary_index(progress=True)
    typer.echo(json.dumps({"entries": len(index.texts)}))


@app.command("train-set")
def train_set(out: Annotated[Path, typer.Argument(help="JSONL file to write.")]) -> None:
    """Write the finance adapter's training set (FPB train split + glossary definitions)."""
    from domains.finance.training import build_training_set

    typer.echo(str(build_training_set(out)))


@app.command("train-adapter")
def train_adapter_command(
    base: BaseOption = None,
    device: Annotated[
        str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: a GPU if PyTorch sees one).")
    ] = None,
) -> None:
    """Train the finance adapter (the train set, the recipe), register it and ship a copy in
    data/finance/adapter/ (a fresh clone installs that copy on first use)."""
    from domains.finance.training import train_finance_adapter

    result = train_finance_adapter(base=base, device=device)
    typer.echo(json.dumps({k: v for k, v in result.items() if k != "training"}))

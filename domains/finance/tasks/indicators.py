"""``finance.indicators``: the streaming snapshot's figures against a direct pandas computation.

Examples are (symbol, date) checkpoints: for every shared ``ohlcv_daily`` file, the replay feed is cut at
ten evenly spaced dates; the snapshot's displayed figures (what the advisor cites) are compared with the
pandas reference (``indicators.reference_frame``) formatted the same way. Metric: share of figures that
match exactly as displayed, and the share of checkpoints where all do. Baseline ``stale``: the snapshot
one bar earlier (shows the check is sensitive to a one-bar lag).
"""

from __future__ import annotations

from domains.finance.resources import FINANCE_DATA
from eval.registry import SystemSpec, Task

CHECKPOINTS = 10


def load(split: str) -> list[dict]:  # noqa: ARG001 - one split
    """(symbol, date, bars) checkpoints over every shared OHLCV file."""
    from eval.data.ohlcv import load_ohlcv, ohlcv_symbols

    examples = []
    for symbol in ohlcv_symbols():
        dates = load_ohlcv(symbol).index.strftime("%Y-%m-%d").tolist()
        step = max(1, len(dates) // CHECKPOINTS)
        for position in range(step - 1, len(dates), step)[:CHECKPOINTS]:
            examples.append({"id": f"{symbol}@{dates[position]}", "symbol": symbol, "date": dates[position]})
    return examples


def predict(examples: list[dict], system: SystemSpec) -> list[dict]:
    """The snapshot facts at each checkpoint (``stale``: one bar earlier)."""
    from domains.finance.feeds import ReplayFeed
    from domains.finance.market import stream_snapshots

    outputs = []
    for example in examples:
        facts, previous = {}, {}
        for _, snapshot in stream_snapshots(ReplayFeed.shared(example["symbol"], end=example["date"])):
            previous, facts = facts, snapshot.facts()
        outputs.append({"facts": previous if system.baseline == "stale" else facts})
    return outputs


def _reference_facts(example: dict) -> dict:
    from domains.finance.indicators import reference_frame
    from domains.finance.market import Snapshot
    from eval.data.ohlcv import load_ohlcv

    frame = load_ohlcv(example["symbol"])
    frame = frame[frame.index.strftime("%Y-%m-%d") <= example["date"]]
    values = reference_frame(frame["close"]).iloc[-1].to_dict()
    values["close"] = float(frame["close"].iloc[-1])
    return Snapshot(example["symbol"], "pandas", example["date"], len(frame), values).facts()


def score(examples: list[dict], outputs: list[dict]) -> dict[str, float]:
    """Share of displayed figures equal to pandas', and share of checkpoints fully equal."""
    matched = total = full = 0
    for example, output in zip(examples, outputs, strict=True):
        reference = _reference_facts(example)
        same = sum(output["facts"].get(k) == v for k, v in reference.items())
        matched, total = matched + same, total + len(reference)
        full += same == len(reference)
    return {"figure_match": matched / total if total else 0.0, "checkpoint_match": full / len(examples)}


def build_task() -> Task:
    """The task object."""
    return Task(
        depends_on=(FINANCE_DATA,),
        name="finance.indicators",
        dataset="ohlcv_daily",
        description="Streaming indicators vs pandas on every shared OHLCV file (figures as displayed)",
        load=load,
        predict=predict,
        score=score,
        primary_metric="figure_match",
        baselines=("stale",),
        needs_model=False,
        batch_size=10,
    )

"""Market snapshots: run a feed through the streaming indicators and freeze the latest values.

The advisor cites a ``Snapshot``: its ``facts()`` are the exact numbers (as displayed) an answer may use.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from domains.finance.feeds import Bar, Feed
from domains.finance.indicators import IndicatorState

# indicator -> (label, display format, is a percentage)
DISPLAY = {
    "close": ("close", "{:.2f}", False),
    "return": ("1-day change", "{:+.2f}%", True),
    "sma_20": ("20-day SMA", "{:.2f}", False),
    "sma_50": ("50-day SMA", "{:.2f}", False),
    "ema_12": ("12-day EMA", "{:.2f}", False),
    "rsi_14": ("14-day RSI", "{:.1f}", False),
    "macd": ("MACD", "{:.2f}", False),
    "macd_signal": ("MACD signal", "{:.2f}", False),
    "bb_upper": ("upper Bollinger band", "{:.2f}", False),
    "bb_lower": ("lower Bollinger band", "{:.2f}", False),
    "volatility_20": ("20-day annualised volatility", "{:.1f}%", True),
    "max_drawdown": ("max drawdown", "{:.1f}%", True),
}


@dataclass(frozen=True)
class Snapshot:
    """The latest bar of one instrument and its indicators."""

    symbol: str
    source: str
    date: str
    bars: int
    values: dict = field(default_factory=dict)

    def facts(self) -> dict[str, str]:
        """Displayed figures by label, e.g. ``{"close": "350.58", "14-day RSI": "61.2"}`` (no NaNs)."""
        out = {}
        for key, (label, fmt, percent) in DISPLAY.items():
            value = self.values.get(key, math.nan)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            out[label] = fmt.format(value * 100 if percent else value)
        return out

    @property
    def simulated(self) -> bool:
        """Whether the figures come from the seeded simulation (no market data for the symbol)."""
        return self.source.startswith("simulated")

    def summary(self) -> str:
        """One line the advisor cites: ``SPY on 2020-08-28 (replay:SPY.csv): close 350.58, ...``."""
        figures = ", ".join(f"{label} {value}" for label, value in self.facts().items())
        return f"{self.symbol} on {self.date} ({self.source}): {figures}"

    def to_dict(self) -> dict:
        """A JSON-able view (raw values and displayed facts)."""
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.values.items()}
        return {
            "symbol": self.symbol,
            "source": self.source,
            "date": self.date,
            "bars": self.bars,
            "values": clean,
            "facts": self.facts(),
        }


def stream_snapshots(feed: Feed) -> Iterator[tuple[Bar, Snapshot]]:
    """Yield each bar with the snapshot after it (indicators updated incrementally)."""
    state = IndicatorState()
    for bar in feed.bars():
        values = state.update(bar.close)
        values["close"] = bar.close
        yield bar, Snapshot(bar.symbol, feed.source, bar.date, state.bars, values)


def latest_snapshot(feed: Feed) -> Snapshot:
    """The snapshot after the feed's last bar.

    Raises:
        DSuiteError: the feed yielded no bars.
    """
    from core_model.errors import DSuiteError

    last = None
    for _, snapshot in stream_snapshots(feed):
        last = snapshot
    if last is None:
        raise DSuiteError(f"Feed {feed.source} for {feed.symbol} yielded no bars.")
    return last


@lru_cache(maxsize=32)
def default_snapshot(symbol: str, seed: int = 0) -> Snapshot:
    """The latest snapshot of ``symbol``'s default feed (shared history replay, else the seeded simulation).

    Both are fixed series, so the result is cached per process.
    """
    from domains.finance.feeds import feed_for

    return latest_snapshot(feed_for(symbol, seed=seed))

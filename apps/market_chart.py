"""The finance app's live price chart: a feed advanced one bar per timer tick, with its indicators.

``start_chart`` opens a feed (a replay of the shared price history, or the seeded simulation) and pre-rolls
a window of bars so the indicators are warm; ``advance`` adds the next bar. When a feed runs out it starts
again from its first bar, so the chart keeps moving while the page is open.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import pandas as pd

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

FEED_KINDS = ("replay", "simulated")
WINDOW = 120  # bars shown on the chart
PREROLL = 60  # bars read at once when a feed starts
REPLAY_BARS = 750  # the last ~3 years of a shared history are replayed
SIMULATED_BARS = 5000
SERIES = {"close": "close", "sma_20": "20-day SMA", "bb_upper": "upper Bollinger",
          "bb_lower": "lower Bollinger"}


@dataclass
class LiveChart:
    """One page's chart: its feed, the stream of (bar, snapshot) pairs, and the last ``WINDOW`` points."""

    symbol: str
    kind: str
    source: str = ""
    rows: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    snapshot: dict = field(default_factory=dict)
    _stream: Iterator | None = None

    def _open(self) -> None:
        from domains.finance.feeds import ReplayFeed, SimulatedFeed
        from domains.finance.market import stream_snapshots

        if self.kind == "replay":
            feed = ReplayFeed.shared(self.symbol, limit=REPLAY_BARS)
        else:
            feed = SimulatedFeed(self.symbol, n_bars=SIMULATED_BARS)
        self.source = feed.source
        self._stream = stream_snapshots(feed)

    def advance(self, bars: int = 1) -> LiveChart:
        """Read the next ``bars`` bars (restarting the feed at its end)."""
        for _ in range(bars):
            if self._stream is None:
                self._open()
            try:
                bar, snapshot = next(self._stream)
            except StopIteration:
                logger.info("feed %s for %s ended: replaying from the start", self.source, self.symbol)
                self.rows.clear()
                self._stream = None
                continue
            values = snapshot.values
            self.rows.append({"date": bar.date, **{name: values.get(key) for key, name in SERIES.items()}})
            self.snapshot = snapshot.to_dict()
        return self

    def frame(self) -> pd.DataFrame:
        """The chart's points in long form: ``date``, ``price``, ``series``."""
        wide = pd.DataFrame(list(self.rows), columns=["date", *SERIES.values()])
        if wide.empty:
            return pd.DataFrame({"date": [], "price": [], "series": []})
        wide["date"] = pd.to_datetime(wide["date"])
        long = wide.melt(id_vars="date", var_name="series", value_name="price").dropna()
        return long.astype({"price": float})

    def facts(self) -> str:
        """The latest bar's indicators as markdown."""
        if not self.snapshot:
            return "_No bars yet._"
        facts = self.snapshot.get("facts", {})
        table = " | ".join(f"**{name}** {value}" for name, value in facts.items())
        return f"**{self.symbol}** ({self.source}) on {self.snapshot['date']}: {table}"


def start_chart(symbol: str, kind: str) -> LiveChart:
    """A chart of ``symbol`` from a ``replay`` (shared history) or ``simulated`` feed, pre-rolled.

    Raises:
        DSuiteError: an unknown feed kind, an empty symbol, or a replay of a symbol without shared history.
    """
    if kind not in FEED_KINDS:
        raise DSuiteError(f"Feed kind {kind!r} is not known; choose one of {', '.join(FEED_KINDS)}.")
    symbol = (symbol or "").strip().upper()
    if not symbol:
        raise DSuiteError("Give a ticker symbol for the chart, e.g. KO.")
    if kind == "replay":
        from eval.data.ohlcv import ohlcv_symbols

        known = ohlcv_symbols()
        if symbol not in known:
            raise DSuiteError(
                f"No shared price history for {symbol!r}; replay needs one of {', '.join(known[:12])}... "
                "or choose the simulated feed, which works for any symbol."
            )
    return LiveChart(symbol, kind).advance(PREROLL)


def replay_symbols() -> list[str]:
    """Symbols with a shared price history (empty when the shared data is missing)."""
    from eval.data.ohlcv import ohlcv_symbols

    try:
        return ohlcv_symbols()
    except DSuiteError as exc:
        logger.warning("no shared price histories: %s", exc)
        return []

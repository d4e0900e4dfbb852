"""Market feeds behind one interface: replay of any OHLCV CSV, a seeded simulation, an optional live provider.

A feed streams ``Bar``s in time order (``feed.bars()``). ``ReplayFeed`` reads a CSV with the columns
``date,open,high,low,close[,adj_close],volume`` (the shared ``ohlcv_daily`` schema); ``SimulatedFeed`` draws a
geometric Brownian motion from a seed (the embedded default: no data needed); ``LiveFeed`` downloads daily
bars with ``yfinance`` when it is installed, keeps a local CSV cache, and replays that cache.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

from core_model.errors import DSuiteError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("date", "open", "high", "low", "close")


@dataclass(frozen=True)
class Bar:
    """One daily OHLCV bar."""

    symbol: str
    date: str  # ISO YYYY-MM-DD
    open: float
    high: float
    low: float
    close: float
    volume: float

    def to_dict(self) -> dict:
        """A JSON-able view."""
        return self.__dict__.copy()


class Feed(Protocol):
    """What every feed offers: a symbol, a source label and a stream of bars."""

    symbol: str
    source: str

    def bars(self) -> Iterator[Bar]:
        """Yield bars in time order."""
        ...


class ReplayFeed:
    """Replays an OHLCV CSV file bar by bar.

    Args:
        path: the CSV file (any file with the columns date, open, high, low, close; volume optional).
        symbol: the instrument's name; default the file's stem.
        start, end: optional ISO dates to cut the series (inclusive).
        limit: keep only the last ``limit`` bars after cutting.
    """

    def __init__(
        self,
        path: str | Path,
        symbol: str | None = None,
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise DSuiteError(
                f"Replay file '{path}' not found. Give a CSV with columns "
                f"{', '.join(REQUIRED_COLUMNS)}, volume "
                "(for example a file of the shared finance/ohlcv_daily folder)."
            )
        if limit is not None and limit < 1:
            raise DSuiteError(f"limit must be a positive number of bars, got {limit}.")
        self.symbol = (symbol or self.path.stem).upper()
        self.source = f"replay:{self.path.name}"
        self.start, self.end, self.limit = start, end, limit

    @classmethod
    def shared(cls, symbol: str, **kwargs) -> ReplayFeed:
        """A replay of the shared ``finance/ohlcv_daily/<SYMBOL>.csv`` file, read in place."""
        from eval.data.ohlcv import ohlcv_path

        return cls(ohlcv_path(symbol), symbol=symbol, **kwargs)

    def frame(self):
        """The (cut) series as a pandas DataFrame indexed by ISO date string."""
        import pandas as pd

        try:
            frame = pd.read_csv(self.path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise DSuiteError(f"Replay file '{self.path}' is not a readable CSV: {exc}.") from exc
        frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise DSuiteError(
                f"Replay file '{self.path}' lacks columns {missing}; it has {list(frame.columns)}. "
                f"Expected {', '.join(REQUIRED_COLUMNS)} and optionally volume."
            )
        if "volume" not in frame.columns:
            frame["volume"] = math.nan
        frame["date"] = pd.to_datetime(frame["date"], errors="coerce")
        if frame["date"].isna().any():
            row = int(frame["date"].isna().to_numpy().argmax()) + 2
            raise DSuiteError(f"{self.path}:{row}: date is not a valid date; use YYYY-MM-DD.")
        frame = frame.sort_values("date")
        frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
        if self.start:
            frame = frame[frame["date"] >= self.start]
        if self.end:
            frame = frame[frame["date"] <= self.end]
        if self.limit:
            frame = frame.tail(self.limit)
        for column in ("open", "high", "low", "close", "volume"):
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
        if frame["close"].isna().any():
            raise DSuiteError(f"Replay file '{self.path}' has rows without a numeric close price.")
        if frame.empty:
            raise DSuiteError(f"Replay file '{self.path}' has no bars between {self.start} and {self.end}.")
        return frame.set_index("date")

    def bars(self) -> Iterator[Bar]:
        """Yield the file's bars in date order."""
        for day, row in self.frame().iterrows():
            yield Bar(self.symbol, day, row["open"], row["high"], row["low"], row["close"], row["volume"])


def _seed_for(symbol: str, seed: int) -> int:
    digest = hashlib.sha256(f"{symbol}:{seed}".encode()).hexdigest()
    return int(digest[:12], 16)


class SimulatedFeed:
    """A seeded geometric Brownian motion: the same seed and symbol always give the same bars.

    Args:
        symbol: the instrument's name (part of the seed, so two symbols differ).
        seed: the random seed.
        n_bars: how many daily bars.
        start_price: the first open.
        drift: yearly expected log return; volatility: yearly volatility.
        start_date: date of the first bar (weekdays only).
    """

    def __init__(
        self,
        symbol: str = "SIM",
        seed: int = 0,
        n_bars: int = 300,
        start_price: float = 100.0,
        drift: float = 0.07,
        volatility: float = 0.2,
        start_date: str = "2024-01-02",
    ) -> None:
        if n_bars < 1 or start_price <= 0 or volatility < 0:
            raise DSuiteError(
                f"Simulated feed needs n_bars >= 1, start_price > 0, volatility >= 0; got {n_bars}, "
                f"{start_price}, {volatility}."
            )
        self.symbol = symbol.upper()
        self.seed, self.n_bars, self.start_price = seed, n_bars, start_price
        self.drift, self.volatility = drift, volatility
        self.start_date = date.fromisoformat(start_date)
        self.source = f"simulated:seed={seed}"

    def bars(self) -> Iterator[Bar]:
        """Yield ``n_bars`` simulated daily bars (four intraday steps each for high/low)."""
        import numpy as np

        rng = np.random.default_rng(_seed_for(self.symbol, self.seed))
        dt = 1 / 252 / 4
        price, day = self.start_price, self.start_date
        for _ in range(self.n_bars):
            while day.weekday() >= 5:
                day += timedelta(days=1)
            shocks = rng.standard_normal(4)
            path = price * np.exp(
                np.cumsum(
                    (self.drift - self.volatility**2 / 2) * dt + self.volatility * math.sqrt(dt) * shocks
                )
            )
            open_, close = price, float(path[-1])
            high, low = max(open_, float(path.max())), min(open_, float(path.min()))
            volume = float(rng.integers(1_000_000, 5_000_000))
            yield Bar(
                self.symbol,
                day.isoformat(),
                round(open_, 4),
                round(high, 4),
                round(low, 4),
                round(close, 4),
                volume,
            )
            price, day = close, day + timedelta(days=1)


class LiveFeed:
    """Daily bars from Yahoo Finance through the optional ``yfinance`` package, cached as CSV.

    The cache file (``<cache_dir>/<SYMBOL>-<period>-<today>.csv``) is reused the same day, so a second run
    works without the network. Without ``yfinance`` the constructor raises a clear ``DSuiteError``.
    """

    def __init__(self, symbol: str, period: str = "1y", cache_dir: str | Path | None = None) -> None:
        try:
            import yfinance  # noqa: F401 - optional provider
        except ImportError as exc:
            raise DSuiteError(
                "The live market provider needs the optional package 'yfinance', which is not installed. "
                "Install it with `pip install yfinance` (extra `live`), or use --replay FILE "
                "or the simulated feed."
            ) from exc
        from core_model.paths import dsuite_home

        self.symbol = symbol.upper()
        self.period = period
        self.cache_dir = Path(cache_dir) if cache_dir else dsuite_home() / "finance" / "live_cache"
        self.source = f"live:yfinance:{period}"

    def cache_path(self) -> Path:
        """Today's cache file for this symbol and period."""
        return self.cache_dir / f"{self.symbol}-{self.period}-{date.today().isoformat()}.csv"

    def download(self) -> Path:
        """Fetch the bars (or reuse today's cache) and return the cached CSV."""
        path = self.cache_path()
        if path.is_file():
            return path
        import yfinance

        frame = yfinance.Ticker(self.symbol).history(period=self.period, auto_adjust=False)
        if frame is None or frame.empty:
            raise DSuiteError(
                f"yfinance returned no bars for {self.symbol!r} (period {self.period}); check the symbol."
            )
        frame = frame.reset_index().rename(columns=lambda c: str(c).strip().lower().replace(" ", "_"))
        frame["date"] = frame["date"].astype(str).str[:10]
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        frame[["date", "open", "high", "low", "close", "volume"]].to_csv(tmp, index=False)
        tmp.replace(path)
        return path

    def bars(self) -> Iterator[Bar]:
        """Yield the cached bars."""
        yield from ReplayFeed(self.download(), symbol=self.symbol).bars()


def feed_for(symbol: str, seed: int = 0) -> Feed:
    """The default feed for ``symbol``: a replay of the shared history if one exists, else a simulation."""
    from eval.data.ohlcv import ohlcv_symbols

    try:
        shared = symbol.upper() in ohlcv_symbols()
    except DSuiteError:
        shared = False
    return ReplayFeed.shared(symbol) if shared else SimulatedFeed(symbol, seed=seed)

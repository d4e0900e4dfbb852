"""Technical indicators, computed incrementally bar by bar, with a direct pandas reference.

``IndicatorState.update(bar)`` keeps O(window) state and returns the indicator values after that bar;
``reference_frame(closes)`` computes the same columns over a whole series with pandas. The two agree
to floating-point precision (tested), so the streaming numbers the advisor cites are the standard ones.

Definitions (``n`` = window):
- ``return``: close / previous close - 1.
- ``sma_n``: mean of the last n closes. ``ema_n``: ``ewm(span=n, adjust=False)``.
- ``rsi_14``: Wilder's RSI, ``ewm(alpha=1/14, adjust=False, min_periods=14)`` of gains and losses.
- ``macd`` = ema_12 - ema_26; ``macd_signal`` = ewm(span=9, adjust=False) of macd; ``macd_hist``.
- ``bb_mid/bb_upper/bb_lower``: sma_20 +- 2 population standard deviations of the last 20 closes.
- ``volatility_20``: sample standard deviation of the last 20 returns times sqrt(252) (annualised).
- ``max_drawdown``: the lowest close / running peak - 1 so far (0 or negative).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

SMA_WINDOWS = (20, 50)
EMA_SPANS = (12, 26)
RSI_WINDOW = 14
MACD_SIGNAL = 9
BB_WINDOW = 20
BB_WIDTH = 2.0
VOL_WINDOW = 20
TRADING_DAYS = 252
COLUMNS = (
    "return",
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_mid",
    "bb_upper",
    "bb_lower",
    "volatility_20",
    "max_drawdown",
)


def _mean(values) -> float:
    return math.fsum(values) / len(values)


def _std(values, ddof: int) -> float:
    mean = _mean(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - ddof))


@dataclass
class _Ewm:
    """An exponentially weighted mean with ``adjust=False`` (y0 = x0; y = (1-a) y + a x)."""

    alpha: float
    value: float | None = None
    count: int = 0

    def update(self, x: float) -> float:
        self.value = x if self.value is None else (1 - self.alpha) * self.value + self.alpha * x
        self.count += 1
        return self.value


@dataclass
class IndicatorState:
    """Streaming indicator state for one instrument."""

    closes: deque = field(default_factory=lambda: deque(maxlen=max(max(SMA_WINDOWS), BB_WINDOW)))
    returns: deque = field(default_factory=lambda: deque(maxlen=VOL_WINDOW))
    emas: dict = field(default_factory=lambda: {n: _Ewm(2 / (n + 1)) for n in EMA_SPANS})
    gain: _Ewm = field(default_factory=lambda: _Ewm(1 / RSI_WINDOW))
    loss: _Ewm = field(default_factory=lambda: _Ewm(1 / RSI_WINDOW))
    signal: _Ewm = field(default_factory=lambda: _Ewm(2 / (MACD_SIGNAL + 1)))
    peak: float = -math.inf
    max_drawdown: float = 0.0
    bars: int = 0

    def update(self, close: float) -> dict[str, float]:
        """Add one closing price; return every indicator (NaN where the window is not full yet)."""
        nan = math.nan
        previous = self.closes[-1] if self.closes else None
        self.closes.append(close)
        self.bars += 1
        out: dict[str, float] = dict.fromkeys(COLUMNS, nan)
        if previous is not None:
            change = close - previous
            out["return"] = close / previous - 1
            self.returns.append(out["return"])
            self.gain.update(max(change, 0.0))
            self.loss.update(max(-change, 0.0))
            if self.gain.count >= RSI_WINDOW:
                out["rsi_14"] = (
                    100.0 if self.loss.value == 0 else 100 - 100 / (1 + self.gain.value / self.loss.value)
                )
        closes = list(self.closes)
        for n in SMA_WINDOWS:
            if len(closes) >= n:
                out[f"sma_{n}"] = _mean(closes[-n:])
        for n, ewm in self.emas.items():
            out[f"ema_{n}"] = ewm.update(close)
        out["macd"] = out["ema_12"] - out["ema_26"]
        out["macd_signal"] = self.signal.update(out["macd"])
        out["macd_hist"] = out["macd"] - out["macd_signal"]
        if len(closes) >= BB_WINDOW:
            window = closes[-BB_WINDOW:]
            mid, std = _mean(window), _std(window, ddof=0)
            out.update(bb_mid=mid, bb_upper=mid + BB_WIDTH * std, bb_lower=mid - BB_WIDTH * std)
        if len(self.returns) >= VOL_WINDOW:
            out["volatility_20"] = _std(self.returns, ddof=1) * math.sqrt(TRADING_DAYS)
        self.peak = max(self.peak, close)
        self.max_drawdown = min(self.max_drawdown, close / self.peak - 1)
        out["max_drawdown"] = self.max_drawdown
        return out


def reference_frame(closes):
    """The same indicators over a whole close series, computed directly with pandas.

    Args:
        closes: a pandas Series of closing prices in time order.

    Returns:
        A DataFrame with one column per name in ``COLUMNS``, aligned with ``closes``.
    """
    import numpy as np
    import pandas as pd

    close = closes.astype(float)
    out = pd.DataFrame(index=close.index)
    out["return"] = close.pct_change()
    for n in SMA_WINDOWS:
        out[f"sma_{n}"] = close.rolling(n).mean()
    for n in EMA_SPANS:
        out[f"ema_{n}"] = close.ewm(span=n, adjust=False).mean()
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=1 / RSI_WINDOW, adjust=False, min_periods=RSI_WINDOW).mean()
    loss = (-delta).clip(lower=0).ewm(alpha=1 / RSI_WINDOW, adjust=False, min_periods=RSI_WINDOW).mean()
    rsi = 100 - 100 / (1 + gain / loss)
    out["rsi_14"] = rsi.where(loss != 0, 100.0).where(gain.notna())
    out["macd"] = out["ema_12"] - out["ema_26"]
    out["macd_signal"] = out["macd"].ewm(span=MACD_SIGNAL, adjust=False).mean()
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    mid = close.rolling(BB_WINDOW).mean()
    std = close.rolling(BB_WINDOW).std(ddof=0)
    out["bb_mid"], out["bb_upper"], out["bb_lower"] = mid, mid + BB_WIDTH * std, mid - BB_WIDTH * std
    out["volatility_20"] = out["return"].rolling(VOL_WINDOW).std(ddof=1) * np.sqrt(TRADING_DAYS)
    out["max_drawdown"] = (close / close.cummax() - 1).cummin()
    return out[list(COLUMNS)]

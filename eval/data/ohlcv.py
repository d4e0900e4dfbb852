"""Loader for the daily OHLCV price histories (``finance/ohlcv_daily/<SYMBOL>.csv``), read in place."""

from __future__ import annotations

from pathlib import Path

from core_model.errors import DSuiteError
from eval.data.paths import dataset_dir

CARD = "ohlcv_daily"
FOLDER = "finance/ohlcv_daily"
COLUMNS = ("date", "open", "high", "low", "close", "adj_close", "volume")


def ohlcv_symbols() -> list[str]:
    """Symbols with a CSV file in the shared folder (e.g. ``["GOOG", "KO", ...]``)."""
    return sorted(p.stem for p in dataset_dir(FOLDER).glob("*.csv"))


def ohlcv_path(symbol: str) -> Path:
    """The CSV file of ``symbol``.

    Raises:
        DSuiteError: no file for that symbol; the message lists the available ones.
    """
    path = dataset_dir(FOLDER) / f"{symbol.upper()}.csv"
    if not path.is_file():
        raise DSuiteError(f"No OHLCV file for symbol {symbol!r}. Available: {', '.join(ohlcv_symbols())}.")
    return path


def load_ohlcv(symbol: str):
    """A pandas DataFrame indexed by date with float columns open, high, low, close, adj_close, volume."""
    import pandas as pd

    frame = pd.read_csv(ohlcv_path(symbol), parse_dates=["date"])
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DSuiteError(f"{ohlcv_path(symbol)}: missing columns {missing}; expected {list(COLUMNS)}.")
    return frame.set_index("date").astype(float)

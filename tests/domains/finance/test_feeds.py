"""Feeds stream bars; streaming indicators equal a direct pandas computation; live provider is optional."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from core_model.errors import DSuiteError
from domains.finance.feeds import LiveFeed, ReplayFeed, SimulatedFeed, feed_for
from domains.finance.indicators import COLUMNS, IndicatorState, reference_frame
from domains.finance.market import default_snapshot, stream_snapshots
from eval.data.ohlcv import ohlcv_path


def _streamed(feed) -> tuple[pd.DataFrame, pd.Series]:
    state, rows, closes, dates = IndicatorState(), [], [], []
    for bar in feed.bars():
        rows.append(state.update(bar.close))
        closes.append(bar.close)
        dates.append(bar.date)
    return pd.DataFrame(rows, index=dates)[list(COLUMNS)], pd.Series(closes, index=dates)


@pytest.mark.parametrize("symbol", ["SPY", "KO"])
def test_replay_indicators_match_pandas_on_whole_series(symbol):
    streamed, closes = _streamed(ReplayFeed.shared(symbol))
    reference = reference_frame(closes)
    assert len(streamed) == len(pd.read_csv(ohlcv_path(symbol)))
    for column in COLUMNS:
        np.testing.assert_allclose(streamed[column], reference[column], rtol=1e-9, atol=1e-9, err_msg=column)
    assert streamed["rsi_14"].notna().sum() == len(streamed) - 14


def test_simulated_indicators_match_pandas_and_seed_is_deterministic():
    streamed, closes = _streamed(SimulatedFeed("ACME", seed=7, n_bars=400))
    reference = reference_frame(closes)
    for column in COLUMNS:
        np.testing.assert_allclose(streamed[column], reference[column], rtol=1e-9, atol=1e-9, err_msg=column)
    again = [b.close for b in SimulatedFeed("ACME", seed=7, n_bars=400).bars()]
    other = [b.close for b in SimulatedFeed("ACME", seed=8, n_bars=400).bars()]
    assert again == closes.tolist()
    assert again != other


def test_simulated_bars_are_consistent_weekdays():
    bars = list(SimulatedFeed(seed=1, n_bars=30).bars())
    assert len(bars) == 30
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    assert all(pd.Timestamp(b.date).weekday() < 5 for b in bars)


def test_replay_any_csv_with_cut(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n2024-01-03,10,11,9,10.5,100\n2024-01-02,9,10,8,9.5,90\n"
    )
    bars = list(ReplayFeed(path, symbol="abc").bars())
    assert [b.date for b in bars] == ["2024-01-02", "2024-01-03"]
    assert bars[0].symbol == "ABC" and bars[1].close == 10.5
    spy = list(ReplayFeed.shared("SPY", start="2020-08-24", end="2020-08-28").bars())
    assert [b.date for b in spy][0] == "2020-08-24" and len(spy) == 5


def test_replay_errors_are_clear(tmp_path):
    with pytest.raises(DSuiteError, match="not found"):
        ReplayFeed(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("day,price\n2024-01-02,1\n")
    with pytest.raises(DSuiteError, match="lacks columns"):
        list(ReplayFeed(bad).bars())


def test_live_provider_absent_is_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "yfinance", None)  # import yfinance now raises ImportError
    with pytest.raises(DSuiteError, match="optional package 'yfinance'"):
        LiveFeed("SPY")


def test_snapshot_facts_and_default_feeds():
    snapshot = default_snapshot("SPY")
    assert snapshot.date == "2020-08-28" and snapshot.facts()["close"] == "350.58"
    assert "14-day RSI" in snapshot.summary()
    assert feed_for("ACME").source.startswith("simulated")
    first = next(stream_snapshots(SimulatedFeed(n_bars=3)))[1]
    assert "20-day SMA" not in first.facts()  # window not full yet

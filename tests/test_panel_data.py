"""The bundled data files are what data/README.md says they are: rows, dates and tickers."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from forecaster.data import load_prices
from forecaster.data.panel import load_panel

README = (REPO_ROOT / "data" / "README.md").read_text(encoding="utf-8")
DATE = r"\d{4}-\d{2}-\d{2}"


def table_rows(first_cell: str) -> list[list[str]]:
    """The cells of the README's markdown table rows whose first cell matches `first_cell`."""
    rows = []
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(first_cell, cells[0]):
            rows.append(cells)
    return rows


def panel():
    return load_panel(
        [REPO_ROOT / "data" / "panel.csv"],
        date_column="date",
        price_column="price",
        ticker_column="ticker",
    )


@pytest.mark.parametrize("name", ["sp500.csv", "nasdaq.csv", "synthetic.csv"])
def test_each_single_series_file_has_its_documented_rows_and_dates(name):
    [row] = table_rows(f"`{re.escape(name)}`")
    first, last = re.findall(DATE, row[2])
    prices = load_prices(REPO_ROOT / "data" / name).prices
    assert (len(prices), f"{prices.index[0]:%Y-%m-%d}", f"{prices.index[-1]:%Y-%m-%d}") == (
        int(row[3]),
        first,
        last,
    )


def test_the_panel_holds_every_documented_series_with_its_rows_and_dates():
    documented = table_rows(r"[A-Z0-9]+")  # the per-series table: ticker, ..., rows, first, last
    loaded = panel()
    assert loaded.tickers == [row[0] for row in documented]
    assert len(loaded) == 29
    for row in documented:
        prices = loaded.prices(row[0])
        assert (len(prices), f"{prices.index[0]:%Y-%m-%d}", f"{prices.index[-1]:%Y-%m-%d}") == (
            int(row[4]),
            row[5],
            row[6],
        ), row[0]
    [summary] = table_rows("`panel.csv`")
    assert sum(len(s.prices) for s in loaded.series) == int(summary[3])
    assert re.findall(DATE, summary[2]) == [
        f"{loaded.calendar[0]:%Y-%m-%d}",
        f"{loaded.calendar[-1]:%Y-%m-%d}",
    ]


def test_the_panel_has_stocks_indices_fx_and_a_commodity_with_bars_where_documented():
    loaded = panel()
    assert {"SP500", "NASDAQ", "EURUSD", "EURJPY", "WTI", "AAPL"} <= set(loaded.tickers)
    with_bars = [s.ticker for s in loaded.series if len(s.bar_fields.columns)]
    assert with_bars == ["SP500", "NASDAQ"]
    assert list(loaded["SP500"].bar_fields.columns) == ["open", "high", "low", "volume"]
    # The index rows agree with the single-series file they share a source with.
    sp500 = load_prices(REPO_ROOT / "data" / "sp500.csv").prices
    assert np.array_equal(loaded.prices("SP500").to_numpy(), sp500.to_numpy())
    assert loaded.prices("SP500").index.equals(sp500.index)


def test_every_series_spans_many_years_of_daily_bars():
    for s in panel().series:
        days = np.diff(s.prices.index.to_numpy()).astype("timedelta64[D]").astype(int)
        assert s.prices.index[-1] - s.prices.index[0] > pd.Timedelta(days=365 * 19), s.ticker
        assert np.median(days) == 1 and days.max() <= 7, s.ticker

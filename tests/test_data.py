"""Specification of `forecaster.data.load_prices`: what it accepts. How it refuses bad files,
word for word, is in the catalogue of bad input, tests/test_errors.py."""

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from forecaster.data.io import PriceSeries, file_sha256, load_prices

YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- what a good file gives -------------------------------------------------------------


def test_yahoo_file_uses_adj_close_by_default(tmp_path):
    path = write(
        tmp_path,
        YAHOO_HEADER
        + "2020-01-02,10,11,9,10.5,10.25,1000\n"
        + "2020-01-03,10.5,12,10,11.5,11.25,2000\n",
    )
    series = load_prices(path)
    assert isinstance(series, PriceSeries)
    assert series.price_column == "Adj Close"
    assert series.date_column == "Date"
    assert series.prices.name == "Adj Close"
    assert series.prices.dtype == np.float64
    assert series.prices.index.name == "date"
    assert list(series.prices.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
    assert series.prices.tolist() == [10.25, 11.25]
    assert series.dropped_rows == 0
    assert series.path == path.resolve()
    assert series.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_without_adj_close_uses_close(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,10.5\n2020-01-03,11.5\n")
    series = load_prices(path)
    assert series.price_column == "Close"
    assert series.prices.tolist() == [10.5, 11.5]


def test_explicit_price_column(tmp_path):
    path = write(tmp_path, YAHOO_HEADER + "2020-01-02,10,11,9,10.5,10.25,1000\n")
    series = load_prices(path, price_column="High")
    assert series.price_column == "High"
    assert series.prices.name == "High"
    assert series.prices.tolist() == [11.0]


def test_custom_date_column(tmp_path):
    path = write(tmp_path, "timestamp,price\n2020-01-02,1.5\n2020-01-03,2.5\n")
    series = load_prices(path, date_column="timestamp", price_column="price")
    assert series.date_column == "timestamp"
    assert series.prices.index.name == "date"
    assert series.prices.to_dict() == {
        pd.Timestamp("2020-01-02"): 1.5,
        pd.Timestamp("2020-01-03"): 2.5,
    }


def test_relative_path_is_resolved_to_absolute(tmp_path, monkeypatch):
    write(tmp_path, "Date,Close\n2020-01-02,1\n")
    monkeypatch.chdir(tmp_path)
    assert load_prices("prices.csv").path == tmp_path.resolve() / "prices.csv"


def test_timestamps_keep_their_local_time_whatever_their_offset(tmp_path):
    path = write(
        tmp_path,
        "Date,Close\n2020-01-02 16:00:00,1\n2020-01-03T09:30:00+01:00,2\n2020-01-04T00:00:00Z,3\n",
    )
    index = load_prices(path).prices.index
    assert index.tz is None
    assert list(index) == [
        pd.Timestamp("2020-01-02 16:00"),
        pd.Timestamp("2020-01-03 09:30"),
        pd.Timestamp("2020-01-04 00:00"),
    ]


def test_an_offset_never_moves_a_daily_bar_to_another_day(tmp_path):
    # Midnight in Tokyo is 15:00 the day before in UTC: the bar is still the bar of its date.
    rows = "".join(f"2020-01-{d:02d}T00:00:00+09:00,{d}\n" for d in (6, 7, 8, 9, 10, 14))
    index = load_prices(write(tmp_path, "Date,Close\n" + rows)).prices.index
    assert list(index.day) == [6, 7, 8, 9, 10, 14]
    assert (index == index.normalize()).all()


def test_a_session_keeps_its_local_hours_across_a_daylight_saving_change(tmp_path):
    # New York opens at 09:30 local time, 14:30 UTC in winter and 13:30 UTC in summer.
    path = write(
        tmp_path,
        "Date,Close\n2020-03-06T09:30:00-05:00,1\n2020-03-09T09:30:00-04:00,2\n",
    )
    assert list(load_prices(path).prices.index.time) == [pd.Timestamp("09:30").time()] * 2


def test_round_the_clock_local_times_that_repeat_are_read_in_utc(tmp_path):
    # Berlin's clocks go back at 03:00 on 2020-10-25: 02:30 happens twice, an hour apart.
    path = write(
        tmp_path,
        "Date,Close\n2020-10-25T02:00:00+02:00,1\n2020-10-25T02:30:00+02:00,2\n"
        "2020-10-25T02:00:00+01:00,3\n2020-10-25T02:30:00+01:00,4\n",
    )
    index = load_prices(path).prices.index
    assert list(index) == list(pd.date_range("2020-10-25 00:00", periods=4, freq="30min"))


def test_other_columns_may_contain_anything(tmp_path):
    path = write(tmp_path, YAHOO_HEADER + "2020-01-02,x,,abc,-1,10.25,n/a\n")
    assert load_prices(path).prices.tolist() == [10.25]


def test_byte_order_mark_and_spaces_around_cells_are_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffDate , Close\n 2020-01-02 , 10.5 \n".encode())
    assert load_prices(path).prices.tolist() == [10.5]


def test_empty_price_rows_are_dropped_counted_and_warned(tmp_path, caplog):
    path = write(
        tmp_path,
        "Date,Close\n2020-01-02,1\n2020-01-03,\n2020-01-06,null\n2020-01-07,4\n2020-01-08,NaN\n",
    )
    with caplog.at_level(logging.WARNING, logger="forecaster.data.io"):
        series = load_prices(path)
    assert series.dropped_rows == 3
    assert list(series.prices.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-07")]
    assert series.prices.tolist() == [1.0, 4.0]
    [record] = [r for r in caplog.records if r.name == "forecaster.data.io"]
    assert record.levelno == logging.WARNING
    assert "dropped 3 row(s)" in record.getMessage()
    assert "first at line 3" in record.getMessage()
    assert "'Close'" in record.getMessage()


def test_sha256_is_the_content_hash(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n")
    before = file_sha256(path)
    assert before == load_prices(path).sha256
    assert before == hashlib.sha256(b"Date,Close\n2020-01-02,1\n").hexdigest()
    write(tmp_path, "Date,Close\n2020-01-02,2\n")
    assert file_sha256(path) != before
    assert load_prices(path).sha256 == file_sha256(path)


def test_bundled_sp500_loads():
    series = load_prices(REPO_ROOT / "data" / "sp500.csv")
    prices = series.prices
    assert len(prices) == 5031
    assert prices.index[0] == pd.Timestamp("1999-01-04")
    assert prices.index[-1] == pd.Timestamp("2018-12-31")
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert (prices > 0).all()
    assert prices.iloc[0] == pytest.approx(1228.099976)
    assert series.dropped_rows == 0

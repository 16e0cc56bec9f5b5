"""Forecast timestamps follow the data's own spacing (`forecaster.data.timestamps`)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import REPO_ROOT

from forecaster.data.timestamps import future_dates
from forecaster.errors import DataError


def stamps(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v) for v in values]


def test_daily_stock_bars_step_over_weekends():
    index = pd.bdate_range("2020-01-01", "2020-02-14")  # ends on a Friday
    assert list(future_dates(index, 3)) == stamps("2020-02-17", "2020-02-18", "2020-02-19")


def test_daily_round_the_clock_bars_include_weekends():
    index = pd.date_range("2020-01-01", "2020-02-14")
    assert list(future_dates(index, 2)) == stamps("2020-02-15", "2020-02-16")


def test_daily_bars_keep_their_time_of_day():
    index = pd.bdate_range("2020-01-01", periods=30) + pd.Timedelta(hours=16)
    assert future_dates(index, 1)[0] == index[-1] + pd.offsets.BDay(1)


def test_hourly_bars_step_through_the_session_then_to_the_next_trading_day():
    days = pd.bdate_range("2020-01-06", periods=15)  # ends Friday 2020-01-24
    index = pd.DatetimeIndex(
        [
            t
            for day in days
            for t in pd.date_range(day + pd.Timedelta("9h30min"), periods=7, freq="h")
        ]
    )
    assert index[-1] == pd.Timestamp("2020-01-24 15:30")
    assert list(future_dates(index, 3)) == stamps(
        "2020-01-27 09:30", "2020-01-27 10:30", "2020-01-27 11:30"
    )
    assert list(future_dates(index[:-2], 3)) == stamps(
        "2020-01-24 14:30", "2020-01-24 15:30", "2020-01-27 09:30"
    )


def test_round_the_clock_hourly_bars_run_on_through_midnight():
    index = pd.date_range("2020-01-01", "2020-01-31 22:00", freq="h")
    assert list(future_dates(index, 3)) == stamps(
        "2020-01-31 23:00", "2020-02-01 00:00", "2020-02-01 01:00"
    )


@pytest.mark.parametrize(
    "frequency, expected",
    [
        ("W-FRI", ["2020-07-03", "2020-07-10"]),
        ("ME", ["2022-07-31", "2022-08-31"]),
    ],
)
def test_weekly_and_monthly_bars_keep_their_anchor(frequency, expected):
    start = "2020-01-03" if frequency == "W-FRI" else "2020-01-31"
    index = pd.date_range(start, periods=26 if frequency == "W-FRI" else 30, freq=frequency)
    assert list(future_dates(index, 2)) == stamps(*expected)


def test_one_bar_has_no_spacing():
    with pytest.raises(DataError, match="need at least 2 dated bars"):
        future_dates(pd.DatetimeIndex(["2020-01-06"]), 3)


def test_a_calendar_that_does_not_fit_the_data_is_named_with_the_days():
    from forecaster.data import load_prices
    from forecaster.data.timestamps import calendar_mismatch

    sp500 = load_prices(REPO_ROOT / "data" / "sp500.csv").prices.index
    assert calendar_mismatch(sp500, "XNYS") == []  # the bundled index trades NYSE sessions
    assert calendar_mismatch(sp500, None) == [] and calendar_mismatch(sp500, "24/7") == []

    [closed] = calendar_mismatch(sp500.append(pd.DatetimeIndex(["2019-01-01"])), "XNYS")
    assert "1 of the 5032 bars fall on days XNYS is closed (2019-01-01)" in closed

    gap = sp500.delete([100, 101])  # two sessions without a bar
    [missing] = calendar_mismatch(gap, "XNYS")
    assert f"2 of its 5031 sessions in the data's span have no bar ({sp500[100]:%Y-%m-%d}" in (
        missing
    )

    weekly = pd.date_range("2015-01-02", periods=200, freq="W-FRI")
    assert calendar_mismatch(weekly, "XNYS") == []  # weekly bars keep their own anchor

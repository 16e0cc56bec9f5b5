"""Forecast dates on an exchange's sessions (`data.calendar`), and on the data's own spacing
without one."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import compose_train_config

from forecaster.data.io import load_prices
from forecaster.data.timestamps import check_calendar, describe_calendar, future_dates
from forecaster.errors import DataError
from forecaster.paths import bundled


def dates(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v) for v in values]


def test_the_bundled_sp500_forecast_after_2018_12_31_skips_new_year():
    prices = load_prices(bundled("sp500.csv")).prices
    assert prices.index[-1] == pd.Timestamp("2018-12-31")
    assert list(future_dates(prices.index, 3, "XNYS")) == dates(
        "2019-01-02", "2019-01-03", "2019-01-04"
    )
    # Without a calendar only weekends are known: the holiday is taken for a trading day.
    assert future_dates(prices.index, 1)[0] == pd.Timestamp("2019-01-01")


def test_the_bundled_us_indices_use_the_nyse_calendar():
    for name in ("sp500", "nasdaq"):
        assert compose_train_config([f"data={name}"]).data.calendar == "XNYS"
    assert compose_train_config(["data=synthetic"]).data.calendar is None


def test_daily_dates_skip_holidays_and_weekends_across_a_long_horizon():
    index = pd.bdate_range("2019-11-01", "2019-12-20")  # Friday; then Christmas, New Year
    assert list(future_dates(index, 9, "XNYS")) == dates(
        "2019-12-23", "2019-12-24", "2019-12-26", "2019-12-27", "2019-12-30",
        "2019-12-31", "2020-01-02", "2020-01-03", "2020-01-06",
    )  # fmt: skip


def test_intraday_bars_keep_their_session_times_and_step_over_a_holiday():
    days = ["2019-08-29", "2019-08-30"]  # Thu, Fri; Monday 2019-09-02 is Labor Day
    index = pd.DatetimeIndex(
        [t for d in days for t in pd.date_range(f"{d} 09:30", f"{d} 16:00", freq="h")]
    )
    future = future_dates(index, 9, "XNYS")
    assert future[0] == pd.Timestamp("2019-09-03 09:30")
    assert future[7] == pd.Timestamp("2019-09-04 09:30")  # 7 bars a session, as the data has


def test_round_the_clock_and_weekly_series_keep_their_own_spacing():
    daily = pd.date_range("2019-08-01", "2019-08-31")  # every day: crypto
    assert list(future_dates(daily, 3)) == dates("2019-09-01", "2019-09-02", "2019-09-03")
    assert list(future_dates(daily, 3, "24/7")) == dates("2019-09-01", "2019-09-02", "2019-09-03")
    weekly = pd.date_range("2019-06-07", "2019-08-30", freq="W-FRI")
    assert list(future_dates(weekly, 2, "XNYS")) == dates("2019-09-06", "2019-09-13")


def test_an_unknown_calendar_names_the_key_and_the_codes():
    check_calendar("XNYS")
    check_calendar(None)
    with pytest.raises(DataError, match=r"data.calendar='NYSE Euronext' is not an exchange"):
        check_calendar("NYSE Euronext")


def test_the_output_says_where_dates_come_from():
    assert "holidays are unknown" in describe_calendar(None)
    assert "data.calendar" in describe_calendar(None)
    assert describe_calendar("XNYS").startswith("calendar: XNYS")

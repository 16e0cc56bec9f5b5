"""Timestamps of a price series: how they are read, and which timestamps a forecast is for.

One place for calendar rules, so that exchange calendars can later replace the inference below.

Reading (`parse_timestamps`):
- ISO 8601 only (``2010-01-04``, ``2010-01-04 16:00:00``, ``2010-01-04T16:00:00+09:00``).
- A timestamp with a UTC offset keeps its local wall-clock time: the offset is dropped, not
  applied. A daily bar stamped ``2020-01-06T00:00:00+09:00`` is the bar of 6 January, as the
  exchange that wrote it means it, never 5 January in UTC; a New York session stays 09:30-16:00
  across daylight-saving changes.
- Unless dropping the offsets would make timestamps repeat or go backwards (a round-the-clock
  series written in a local time across a daylight-saving change): then every timestamp is
  converted to UTC, which keeps their order.
- Naive timestamps are taken as they are.

Forecasting (`future_dates`): the next ``horizon`` timestamps follow the data's own spacing:
daily bars step over the weekdays the data trades on (Monday to Friday for a stock index, every
day for a round-the-clock market), weekly or monthly bars keep their anchor (``W-FRI``, month
end), and intraday bars step through the session the data shows, then on to the next trading
day's first bar. Exchange holidays are not known.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from forecaster.errors import DataError

log = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)
# The spacing is read from the most recent bars, so a series that changed frequency long ago
# (weekly history, then daily) forecasts at its current frequency.
RECENT_BARS = 500


def parse_timestamps(raw: np.ndarray) -> np.ndarray:
    """Parse ISO 8601 strings to naive datetime64 values by the policy above; NaT where a
    string is not ISO 8601 (the caller reports it)."""
    strings = pd.Series(raw, dtype=object)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandas 2's "mixed time zones" notice
            parsed = pd.to_datetime(strings, format="ISO8601", errors="coerce")
        # Offsets that differ between rows, or rows without one: pandas 3 raises, pandas 2
        # returns objects. Both take the row-by-row path.
        mixed = not pd.api.types.is_datetime64_any_dtype(parsed)
    except ValueError:
        mixed = True
    if mixed:
        utc = pd.to_datetime(strings, format="ISO8601", utc=True, errors="coerce")
        valid = utc.notna().to_numpy()
        # Each valid row on its own, for its wall-clock time (rare: a slow path is fine).
        local = [
            pd.Timestamp(s).tz_localize(None) if ok else pd.NaT
            for s, ok in zip(strings, valid, strict=True)
        ]
        local = pd.to_datetime(pd.Series(local)).to_numpy()
    else:
        if getattr(parsed.dt, "tz", None) is None:
            return parsed.to_numpy()
        local = parsed.dt.tz_localize(None).to_numpy()
        utc = parsed.dt.tz_convert("UTC")
    valid = ~np.isnat(local)
    if _strictly_increasing(local[valid]):
        return local
    in_utc = utc.dt.tz_localize(None).to_numpy()
    if _strictly_increasing(in_utc[valid]):
        log.info(
            "timestamps converted to UTC: in local time they repeat or go backwards (a "
            "daylight-saving change), in UTC they increase"
        )
        return in_utc
    return local  # out of order either way: the caller reports the first bad row as written


def _strictly_increasing(values: np.ndarray) -> bool:
    return bool(np.all(np.diff(values) > np.timedelta64(0)))


def future_dates(index: pd.DatetimeIndex, horizon: int) -> pd.DatetimeIndex:
    """The `horizon` timestamps after the last of `index`, spaced as the data is spaced."""
    if len(index) < 2:
        raise DataError(
            f"need at least 2 dated bars to tell the data's spacing, got {len(index)}: pass "
            "more history"
        )
    recent = index[-RECENT_BARS:]
    step = pd.Series(np.diff(recent.to_numpy())).mode().iloc[0]  # the most common spacing
    weekdays = _trading_weekdays(recent)
    last = index[-1]
    times_of_day = recent - recent.normalize()
    if step >= DAY and times_of_day.nunique() == 1:
        if step == DAY:
            return _trading_days(last, horizon, weekdays)
        frequency = pd.infer_freq(recent[-min(len(recent), 12) :]) if len(recent) >= 3 else None
        if frequency is not None:
            return pd.date_range(last, periods=horizon + 1, freq=frequency)[1:]
        return pd.DatetimeIndex([last + step * k for k in range(1, horizon + 1)])
    opens, closes = times_of_day.min(), times_of_day.max()
    dates, current = [], last
    for _ in range(horizon):
        following = current + step
        if following.normalize() != current.normalize() or following - following.normalize() > (
            closes
        ):
            following = _trading_days(current.normalize(), 1, weekdays)[0] + opens
        dates.append(following)
        current = following
    return pd.DatetimeIndex(dates)


def _trading_weekdays(recent: pd.DatetimeIndex) -> set[int]:
    """The weekdays the data trades on (Monday = 0): those it shows, once it spans three weeks;
    before that, Monday to Friday plus any weekend day it shows."""
    seen = set(recent.dayofweek)
    if recent[-1] - recent[0] >= pd.Timedelta(weeks=3):
        return seen
    return seen | {0, 1, 2, 3, 4}


def _trading_days(last: pd.Timestamp, count: int, weekdays: set[int]) -> pd.DatetimeIndex:
    """The next `count` days after `last`, on the weekdays the data trades, at its time of day."""
    days, day = [], last
    while len(days) < count:
        day = day + DAY
        if day.dayofweek in weekdays:
            days.append(day)
    return pd.DatetimeIndex(days)

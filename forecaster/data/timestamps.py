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
day's first bar. Without a calendar, exchange holidays are not known: daily dates are the
weekdays the data trades on.

With an exchange calendar (`data.calendar`, e.g. ``XNYS``, from the `exchange_calendars`
library), daily and intraday forecasts step over the exchange's sessions instead: no holidays,
no weekends. Weekly and monthly bars keep their own anchor; a round-the-clock series needs no
calendar (or ``24/7``).
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


def check_calendar(name: str | None) -> None:
    """Refuse an exchange calendar name `exchange_calendars` does not know (None is fine)."""
    if name is None:
        return
    import exchange_calendars

    if name not in exchange_calendars.get_calendar_names(include_aliases=True):
        names = exchange_calendars.get_calendar_names(include_aliases=False)
        raise DataError(
            f"data.calendar={name!r} is not an exchange calendar exchange_calendars knows. Fix: "
            f"use its ISO 10383 code (XNYS for the NYSE and NASDAQ-listed US indices, XLON, "
            f"XTKS, XETR, ...; all {len(names)}: {', '.join(names)}), or data.calendar=null to "
            "follow the data's own spacing."
        )


def describe_calendar(name: str | None) -> str:
    """One line for the terminal: where forecast dates come from."""
    if name is None:
        return (
            "calendar: none (data.calendar=null): forecast dates follow the data's spacing, "
            "business days for daily bars; exchange holidays are unknown, set data.calendar "
            "(e.g. XNYS) to skip them"
        )
    return f"calendar: {name} (exchange_calendars): forecast dates are its sessions"


def calendar_mismatch(index: pd.DatetimeIndex, calendar: str | None) -> list[str]:
    """How the daily bars at `index` disagree with `calendar`'s sessions (empty when they
    agree): bars on days the exchange was closed (forecast dates, which step over its sessions,
    would skip days this series trades on), and sessions with no bar (there a horizon of h bars
    spans more than h sessions). Intraday, weekly and monthly data are not checked, nor days
    outside the calendar's range."""
    if calendar is None or calendar == "24/7" or len(index) < 2:
        return []
    days = index.normalize()
    if not days.equals(index) or pd.Series(days).diff().median() > 3 * DAY:
        return []  # intraday, or weekly/monthly bars that keep their own anchor
    import exchange_calendars

    span = exchange_calendars.get_calendar(calendar, start=days[0], end=days[-1])
    sessions = span.sessions.tz_localize(None) if span.sessions.tz else span.sessions
    checked = days[days >= sessions[0]]
    closed = checked[~checked.isin(sessions)]
    missing = sessions[~sessions.isin(days)]
    found = []
    if len(closed):
        found.append(
            f"data.calendar={calendar}: {len(closed)} of the {len(checked)} bars fall on days "
            f"{calendar} is closed ({_days(closed)}), so forecast dates, which step over its "
            "sessions, would skip days this series trades on. Fix: set data.calendar to the "
            "series' exchange, or data.calendar=null to follow the data's own spacing."
        )
    if len(missing):
        found.append(
            f"data.calendar={calendar}: {len(missing)} of its {len(sessions)} sessions in the "
            f"data's span have no bar ({_days(missing)}); at origins before such a gap a horizon "
            "of h bars spans more than h sessions. Fix: fill or check those days in the file, "
            "or set data.calendar to the series' exchange."
        )
    return found


def _days(days: pd.DatetimeIndex) -> str:
    shown = ", ".join(f"{d:%Y-%m-%d}" for d in days[:3])
    return shown + (f", ... {days[-1]:%Y-%m-%d}" if len(days) > 3 else "")


def _sessions_after(last: pd.Timestamp, count: int, calendar: str) -> pd.DatetimeIndex:
    """The next `count` sessions of `calendar` after the day of `last`, at its time of day."""
    import exchange_calendars

    day = last.normalize()
    # Enough calendar days for `count` sessions even across a long closure, and no more: a
    # calendar is built (holidays computed) for the span it covers.
    span = exchange_calendars.get_calendar(
        calendar, start=day - 7 * DAY, end=day + (2 * count + 30) * DAY
    )
    sessions = span.sessions[span.sessions > day][:count]
    return pd.DatetimeIndex(sessions.tz_localize(None) if sessions.tz else sessions) + (last - day)


def future_dates(
    index: pd.DatetimeIndex, horizon: int, calendar: str | None = None
) -> pd.DatetimeIndex:
    """The `horizon` timestamps after the last of `index`, spaced as the data is spaced; daily
    and intraday bars step over the sessions of the exchange `calendar` when given."""
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
            return _trading_days(last, horizon, weekdays, calendar)
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
            following = _trading_days(current.normalize(), 1, weekdays, calendar)[0] + opens
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


def _trading_days(
    last: pd.Timestamp, count: int, weekdays: set[int], calendar: str | None = None
) -> pd.DatetimeIndex:
    """The next `count` days after `last` at its time of day: the sessions of `calendar`, or
    without one the weekdays the data trades."""
    if calendar is not None:
        return _sessions_after(last, count, calendar)
    days, day = [], last
    while len(days) < count:
        day = day + DAY
        if day.dayofweek in weekdays:
            days.append(day)
    return pd.DatetimeIndex(days)

"""Covariates: what a model reads besides a series' own scaled values (`model.covariates`).

Past covariates go into the encoder, one column per feature at every input bar, each computed
from bars dated on or before that bar only:

- ``volatility``: the series' realised volatility, the log of the standard deviation of its log
  returns over the `window` bars ending at the bar (fewer at the series' start).
- ``volume``: the log change of the traded volume from the previous bar, and a presence flag.
- ``range``: the bar's high-low range, ``log(high / low)``, and a presence flag.
- ``tickers``: every ticker's log return on the series' own dates, aligned without look-ahead
  (`forecaster.data.panel_windows.aligned_log_returns`); a panel's global model only.

Volume and high/low are bar fields only some series have (in the bundled panel the two indices;
the stocks, FX rates and oil have a price only). Where a series has no such value at a bar, or
its training part has too few values to be scaled, the feature is 0 and its flag 0; else the
flag is 1. So a model never mistakes "no volume" for "average volume".

Each feature is standardised per series on that series' training part only
(`FeatureScaler.fit`), exactly like the target.

Known-future covariates go into the decoder: ``calendar``, the day of the week and the month as
points on a circle (sine, cosine) and the calendar days to the month's end over 31, for each
forecast step's date. Training windows use their targets' dates; a forecast uses the dates
`forecaster.data.timestamps.future_dates` gives (the data's own trading weekdays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.data.timestamps import future_dates
from forecaster.errors import ConfigError

PAST_COVARIATES = ("volatility", "volume", "range", "tickers")
FUTURE_COVARIATES = ("calendar",)
COVARIATES = PAST_COVARIATES + FUTURE_COVARIATES
CALENDAR_FEATURES = ("dow_sin", "dow_cos", "month_sin", "month_cos", "days_to_month_end")
# Past covariates computed per series (the cross-ticker returns come from the whole panel).
SERIES_COVARIATES = ("volatility", "volume", "range")


def check_covariates(names: Sequence[str], key: str = "model.covariates") -> None:
    """Raise ConfigError unless `names` are known covariates, each once."""
    unknown = [n for n in names if n not in COVARIATES]
    if unknown:
        raise ConfigError(
            f"{key}={list(names)!r}: {unknown} unknown. Fix: choose from {list(COVARIATES)}, "
            f"e.g. {key}=[volatility,calendar], or {key}=[] for none."
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}={list(names)!r} names a covariate twice.")


def series_features(
    prices: pd.Series,
    bar_fields: pd.DataFrame | None,
    names: Sequence[str],
    volatility_window: int,
) -> pd.DataFrame:
    """Unscaled per-series past covariates on `prices`' dates (NaN where there is no value;
    the `_present` columns are filled in by `FeatureScaler.transform`). Row t uses bars up to
    and including t only."""
    frame = pd.DataFrame(index=prices.index)
    log_prices = np.log(prices.to_numpy(dtype=np.float64))
    returns = pd.Series(np.diff(log_prices, prepend=np.nan), index=prices.index)
    bars = bar_fields.reindex(prices.index) if bar_fields is not None else None

    def field(column: str) -> np.ndarray:
        if bars is None or column not in bars:
            return np.full(len(prices), np.nan)
        values = bars[column].to_numpy(dtype=np.float64)
        return np.where(values > 0, values, np.nan)  # a zero or negative bar field is no value

    for name in SERIES_COVARIATES:
        if name not in names:
            continue
        if name == "volatility":
            std = returns.rolling(volatility_window, min_periods=2).std(ddof=0).to_numpy()
            with np.errstate(divide="ignore"):
                frame[name] = np.where(std > 0, np.log(np.where(std > 0, std, 1.0)), np.nan)
            continue
        if name == "volume":
            volume = field("volume")
            frame[name] = np.diff(np.log(volume), prepend=np.nan)
        else:
            frame[name] = np.log(field("high") / field("low"))
        frame[f"{name}_present"] = np.nan
    return frame


@dataclass(frozen=True)
class FeatureScaler:
    """Per column of `series_features`: mean and std of its training values (NaN where the
    training part has fewer than two values, or they do not vary: the feature is then absent)."""

    columns: tuple[str, ...]
    means: np.ndarray
    stds: np.ndarray

    @classmethod
    def fit(cls, features: pd.DataFrame, train_stop: int) -> FeatureScaler:
        """Fit on rows before position `train_stop` (the series' training part) only."""
        train = features.iloc[:train_stop].to_numpy(dtype=np.float64)
        finite = np.isfinite(train)
        count = finite.sum(axis=0)
        filled = np.where(finite, train, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = filled.sum(axis=0) / count
            stds = np.sqrt((np.where(finite, train - means, 0.0) ** 2).sum(axis=0) / count)
        usable = (count >= 2) & (stds > 0)
        return cls(
            tuple(features.columns), np.where(usable, means, np.nan), np.where(usable, stds, np.nan)
        )

    def transform(self, features: pd.DataFrame) -> np.ndarray:
        """``[rows, columns]`` float32: standardised values, 0 where absent; each `_present`
        column 1 where its feature has a value and a scaler, else 0."""
        if tuple(features.columns) != self.columns:
            raise ValueError(f"features {list(features.columns)} are not {list(self.columns)}")
        values = features.to_numpy(dtype=np.float64)
        out = np.zeros_like(values)
        for k, column in enumerate(self.columns):
            if column.endswith("_present"):
                continue
            scaled = (values[:, k] - self.means[k]) / self.stds[k]
            present = np.isfinite(scaled)
            out[:, k] = np.where(present, scaled, 0.0)
            flag = f"{column}_present"
            if flag in self.columns:
                out[:, self.columns.index(flag)] = present
        return out.astype(np.float32)


def calendar_features(dates: pd.DatetimeIndex) -> np.ndarray:
    """``[len(dates), 5]`` float32: day of week and month on the unit circle, and the calendar
    days to the month's last day over 31 (`CALENDAR_FEATURES`)."""
    dates = pd.DatetimeIndex(dates)
    dow = 2 * np.pi * dates.dayofweek.to_numpy() / 7
    month = 2 * np.pi * (dates.month.to_numpy() - 1) / 12
    to_end = (dates.days_in_month.to_numpy() - dates.day.to_numpy()) / 31
    return np.stack(
        [np.sin(dow), np.cos(dow), np.sin(month), np.cos(month), to_end], axis=1
    ).astype(np.float32)


def forecast_calendar(index: pd.DatetimeIndex, origins: np.ndarray, horizon: int) -> np.ndarray:
    """``[len(origins), horizon, 5]``: the calendar features of the dates a forecast from each
    origin (a position in `index`) is for, as `future_dates` infers them from the bars up to
    that origin (never from the bars after it)."""
    rows = [
        calendar_features(future_dates(index[: int(o) + 1], horizon)) for o in np.asarray(origins)
    ]
    return np.stack(rows) if rows else np.zeros((0, horizon, len(CALENDAR_FEATURES)), np.float32)


def window_rows(features: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
    """``[len(origins), lookback, columns]``: the rows of `features` (one per bar) of the
    `lookback` bars ending at each origin (a bar position)."""
    origins = np.asarray(origins, dtype=np.int64)
    return features[origins[:, np.newaxis] + np.arange(1 - lookback, 1)]

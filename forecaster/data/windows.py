"""From a split price series to scaled, leak-free windows for a sequence model.

The path of a price through this module:

1. ``target_series`` turns prices ``p`` into the series ``y`` the model learns: log returns
   ``y_t = log(p_t / p_{t-1})`` (indexed by ``t``, the first bar dropped) or the prices themselves.
2. A ``Scaler`` (mean/std) is fitted on the training part of ``y`` only (`TimeSplit`), and all
   of ``y`` is scaled once, as float32.
3. Windows are views (``sliding_window_view``) of that one scaled array. A window with origin ``t``
   has inputs ``y[t-lookback+1 .. t]`` and targets ``y[t+1 .. t+horizon]``:

   - train windows have inputs AND targets inside train, one every ``stride`` origins;
   - validation windows have every target inside validation; their inputs may reach back into
     train, which is the past of the origin, not a leak;
   - test windows have every target inside test (inputs may reach back into validation).

   Validation and test use every origin (stride 1): evaluation should score every forecast the
   data allows; ``stride`` only thins the (overlapping, highly correlated) training windows.

Nothing after an origin can reach its inputs, and nothing in validation or test can reach the
scaler or a training window; ``tests/test_windows.py`` guards both.

Every window also carries its prices, for scoring in price space: the origin price and the
``horizon`` realised prices after it. Origins are positions in the price series; for log returns
``y_t`` shares its date with ``p_t``, so ``y``-index ``i`` is price position ``i + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.data.splits import (
    TimeSplit,
    WindowConfig,
    check_target,
    target_offset,
    time_split,
)
from forecaster.errors import ConfigError, DataError


@dataclass(frozen=True)
class Scaler:
    """Standardisation ``(v - mean) / std``, fitted on the training part only."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        """Fit on ``values`` (the training part of the target series)."""
        values = np.asarray(values, dtype=np.float64)
        mean, std = float(np.mean(values)), float(np.std(values))
        if not (np.isfinite(mean) and np.isfinite(std) and std > 0):
            raise DataError(
                f"cannot standardise the target: the training part is constant or not finite "
                f"(mean={mean}, std={std}). Use a series whose training part moves, or give the "
                "training part more bars (lower window.val_fraction / window.test_fraction)."
            )
        return cls(mean=mean, std=std)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64) * self.std + self.mean


@dataclass(frozen=True)
class WindowSet:
    """The windows of one split, with the prices needed to score them."""

    inputs: np.ndarray  # [n, lookback, 1] float32: scaled y up to and including the origin
    targets: np.ndarray  # [n, horizon] float32: scaled y of the next `horizon` bars
    origin_index: np.ndarray  # [n] int: position in `prices` of the origin bar
    origin_prices: np.ndarray  # [n] float64: price at the origin
    actual_prices: np.ndarray  # [n, horizon] float64: realised prices after the origin
    origin_dates: pd.DatetimeIndex

    def __len__(self) -> int:
        return len(self.origin_index)


@dataclass(frozen=True)
class Dataset:
    """The windows of every part of one split series, built by ``make_windows``."""

    prices: pd.Series
    split: TimeSplit
    target: str
    scaler: Scaler
    lookback: int
    horizon: int
    train: WindowSet
    val: WindowSet
    test: WindowSet


def target_series(prices: pd.Series, target: str) -> pd.Series:
    """The series the model learns: log returns (first bar dropped) or the prices themselves."""
    check_target(target)
    if target == "price":
        return prices
    p = prices.to_numpy(dtype=np.float64)
    return pd.Series(np.log(p[1:] / p[:-1]), index=prices.index[1:], name="log_return")


def make_windows(
    prices: pd.Series,
    split: TimeSplit,
    *,
    lookback: int,
    horizon: int,
    stride: int = 1,
    target: str = "log_return",
) -> Dataset:
    """Fit the scaler on the training part of `split` and cut its train/val/test windows."""
    offset = target_offset(target)
    y = target_series(prices, target).to_numpy()
    train_stop, val_stop = split.train_stop - offset, split.val_stop - offset  # in y
    scaler = Scaler.fit(y[:train_stop])
    # Scale once; every window below is a view of these rows. Row i spans y[i .. i+L+H-1], so its
    # origin (the last input bar) is y-index i + lookback - 1.
    rows = sliding_window_view(scaler.transform(y).astype(np.float32), lookback + horizon)
    p = prices.to_numpy(dtype=np.float64)

    def windows(first_origin: int, stop_origin: int, step: int) -> WindowSet:
        n_origins = max(0, stop_origin - first_origin)
        first_row = first_origin - lookback + 1
        block = rows[first_row : first_row + n_origins : step]  # a basic slice: still a view
        origin_index = np.arange(first_origin, first_origin + n_origins, step) + offset
        return WindowSet(
            inputs=block[:, :lookback, np.newaxis],
            targets=block[:, lookback:],
            origin_index=origin_index,
            origin_prices=p[origin_index],
            actual_prices=p[origin_index[:, np.newaxis] + np.arange(1, horizon + 1)],
            origin_dates=prices.index[origin_index],
        )

    return Dataset(
        prices=prices,
        split=split,
        target=target,
        scaler=scaler,
        lookback=lookback,
        horizon=horizon,
        train=windows(lookback - 1, train_stop - horizon, stride),
        val=windows(train_stop - 1, val_stop - horizon, 1),
        test=windows(val_stop - 1, len(y) - horizon, 1),
    )


def make_dataset(
    prices: pd.Series,
    *,
    lookback: int,
    horizon: int,
    stride: int = 1,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    target: str = "log_return",
) -> Dataset:
    """Split ``prices`` by time (`time_split`) and cut the windows of every part."""
    check_target(target)
    window = WindowConfig(lookback, horizon, stride, val_fraction, test_fraction)
    split = time_split(prices, window, target)
    return make_windows(
        prices, split, lookback=lookback, horizon=horizon, stride=stride, target=target
    )


def forecast_to_prices(
    scaled_forecast: np.ndarray, origin_prices: np.ndarray, scaler: Scaler, target: str
) -> np.ndarray:
    """Turn ``[n, horizon]`` scaled model output into ``[n, horizon]`` prices."""
    check_target(target)
    scaled_forecast = np.asarray(scaled_forecast)
    origin_prices = np.asarray(origin_prices, dtype=np.float64)
    if scaled_forecast.ndim != 2 or origin_prices.shape != scaled_forecast.shape[:1]:
        raise ValueError(
            f"expected scaled_forecast [n, horizon] and origin_prices [n], got shapes "
            f"{scaled_forecast.shape} and {origin_prices.shape}"
        )
    values = scaler.inverse_transform(scaled_forecast)
    if target == "price":
        return values
    # Returns compound from the origin: p_{t+k} = p_t * exp(r_{t+1} + ... + r_{t+k}). An
    # overflow gives inf, which the callers report with what to do about it.
    with np.errstate(over="ignore"):
        return origin_prices[:, np.newaxis] * np.exp(np.cumsum(values, axis=1))


def pad_windows(windows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad windows of different lengths ([length_i, features] each) into one batch.

    Returns `[n, max_length, features]` float32 (zeros after each row's end) and the lengths,
    for the model's `lengths` argument: each row's final state is taken at its own last bar, so
    series that start at different dates can share a batch.
    """
    if not windows:
        raise ConfigError("pad_windows needs at least one window")
    lengths = np.array([len(w) for w in windows], dtype=np.int32)
    padded = np.zeros((len(windows), lengths.max(), windows[0].shape[1]), np.float32)
    for row, window in enumerate(windows):
        padded[row, : len(window)] = window
    return padded, lengths


def window_inputs(
    prices: pd.Series, origins: np.ndarray, *, lookback: int, scaler: Scaler, target: str
) -> np.ndarray:
    """The ``[n, lookback, 1]`` float32 inputs of the windows ending at each origin (positions
    in `prices`): the same values `make_windows` gives the windows at those origins."""
    offset = target_offset(target)
    origins = np.asarray(origins, dtype=np.int64)
    first = lookback - 1 + offset
    early = origins < first
    if early.any() or (origins >= len(prices)).any():
        bad = int(origins[early][0] if early.any() else origins[origins >= len(prices)][0])
        raise DataError(
            f"cannot forecast from position {bad} of a {len(prices)}-bar series: an origin "
            f"needs window.lookback = {lookback} {target} values up to it, so the first "
            f"possible origin is position {first}, and it must lie inside the series."
        )
    y = target_series(prices, target).to_numpy()
    rows = sliding_window_view(scaler.transform(y).astype(np.float32), lookback)
    return rows[origins - offset - lookback + 1][:, :, np.newaxis]


def encoder_inputs(prices: pd.Series, *, lookback: int, scaler: Scaler, target: str) -> np.ndarray:
    """The ``[1, lookback, 1]`` float32 input for forecasting from the end of ``prices``."""
    needed = lookback + target_offset(target)
    if len(prices) < needed:
        raise DataError(
            f"price series too short to forecast: {len(prices)} bars available, need at least "
            f"{needed} bars for window.lookback = {lookback} with data.target = {target!r}. "
            f"Fix: send the last {needed} bars or more, oldest first."
        )
    return window_inputs(
        prices, np.array([len(prices) - 1]), lookback=lookback, scaler=scaler, target=target
    )


def continuation_inputs(
    prices: pd.Series, *, previous_price: float, scaler: Scaler, target: str
) -> np.ndarray:
    """The ``[1, len(prices), 1]`` float32 input that carries a state over new bars ``prices``,
    the state having seen the bar that closed at ``previous_price``."""
    if len(prices) == 0:
        raise DataError("no new bars to carry the state over: pass at least one price")
    anchored = pd.Series(np.concatenate([[previous_price], prices.to_numpy(dtype=np.float64)]))
    y = target_series(anchored, target).to_numpy()[-len(prices) :]
    # Same float64 transform then float32 cast as make_windows, so the values match exactly.
    return scaler.transform(y).astype(np.float32).reshape(1, len(y), 1)

"""From a validated price series to scaled, leak-free training windows.

The path of a price through this module:

1. ``target_series`` turns prices ``p`` into the series ``y`` the model learns: log returns
   ``y_t = log(p_t / p_{t-1})`` (indexed by ``t``, the first bar dropped) or the prices themselves.
2. ``y`` is split chronologically: the first ``1 - val_fraction - test_fraction`` of its bars are
   train, then validation, then test.
3. A ``Scaler`` (mean/std) is fitted on the training part of ``y`` only, and all of ``y`` is
   scaled once, as float32.
4. Windows are views (``sliding_window_view``) of that one scaled array. A window with origin ``t``
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
``horizon`` realised prices after it. For log returns ``y_t`` shares its date with ``p_t``, so a
window ending at ``y``-index ``t`` has its origin at price position ``t + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.errors import ConfigError, DataError

TARGETS = ("log_return", "price")


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
    """Everything training and evaluation need, built by ``make_dataset``."""

    prices: pd.Series
    target: str
    scaler: Scaler
    lookback: int
    horizon: int
    train: WindowSet
    val: WindowSet
    test: WindowSet
    train_end: pd.Timestamp  # last date of the training part
    val_end: pd.Timestamp  # last date of the validation part
    mase_scale: float  # mean |p_t - p_{t-1}| over the training prices (one-step naive MAE)


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ConfigError(f"data.target must be one of {TARGETS}, got {target!r}")


def target_series(prices: pd.Series, target: str) -> pd.Series:
    """The series the model learns: log returns (first bar dropped) or the prices themselves."""
    _check_target(target)
    if target == "price":
        return prices
    p = prices.to_numpy(dtype=np.float64)
    return pd.Series(np.log(p[1:] / p[:-1]), index=prices.index[1:], name="log_return")


def _split_stops(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """End positions (exclusive) of the train and validation parts of ``n`` bars."""
    # round(), not int(): 0.7 * 100 is 70.00000000000001 or 69.99999999999999 depending on how
    # the fractions were written, and the split should not depend on that.
    return round(n * (1 - val_fraction - test_fraction)), round(n * (1 - test_fraction))


def _window_counts(
    n: int, lookback: int, horizon: int, train_stop: int, val_stop: int
) -> tuple[int, int, int]:
    """Number of train / val / test origins (before striding) for ``n`` bars of ``y``."""
    return (
        max(0, train_stop - lookback - horizon + 1),  # origins lookback-1 .. train_stop-1-horizon
        max(0, val_stop - train_stop - horizon + 1),  # origins train_stop-1 .. val_stop-1-horizon
        max(0, n - val_stop - horizon + 1),  # origins val_stop-1 .. n-1-horizon
    )


def _check_window_config(
    lookback: int, horizon: int, stride: int, val_fraction: float, test_fraction: float
) -> None:
    for key, value in (("lookback", lookback), ("horizon", horizon), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ConfigError(f"window.{key} must be an integer >= 1, got {value!r}")
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise ConfigError(f"window.{key} must be in (0, 1), got {value!r}")
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"window.val_fraction + window.test_fraction must be < 1 to leave a training part, "
            f"got {val_fraction} + {test_fraction}"
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
    """Split ``prices`` by time, fit the scaler on train, and cut train/val/test windows."""
    _check_target(target)
    _check_window_config(lookback, horizon, stride, val_fraction, test_fraction)

    y = target_series(prices, target)
    n = len(y)
    offset = len(prices) - n  # 1 for log returns: y[t] has the date of prices[t + 1]
    train_stop, val_stop = _split_stops(n, val_fraction, test_fraction)
    counts = _window_counts(n, lookback, horizon, train_stop, val_stop)
    if min(counts) == 0:
        needed = _min_bars(lookback, horizon, val_fraction, test_fraction) + offset
        raise DataError(
            f"price series too short: {len(prices)} bars available, need at least {needed} "
            f"bars. The split gives train {train_stop} / val {val_stop - train_stop} / test "
            f"{n - val_stop} {target} values; train needs window.lookback + window.horizon = "
            f"{lookback + horizon}, val and test need window.horizon = {horizon} each. Use a "
            "longer series, lower window.lookback / window.horizon, or change "
            "window.val_fraction / window.test_fraction."
        )

    scaler = Scaler.fit(y.to_numpy()[:train_stop])
    # Scale once; every window below is a view of these rows. Row i spans y[i .. i+L+H-1], so its
    # origin (the last input bar) is t = i + lookback - 1.
    rows = sliding_window_view(
        scaler.transform(y.to_numpy()).astype(np.float32), lookback + horizon
    )
    p = prices.to_numpy(dtype=np.float64)

    def windows(first_origin: int, n_origins: int, step: int) -> WindowSet:
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

    n_train, n_val, n_test = counts
    train_prices = p[: train_stop + offset]  # the prices that produced train y (p_0 for returns)
    return Dataset(
        prices=prices,
        target=target,
        scaler=scaler,
        lookback=lookback,
        horizon=horizon,
        train=windows(lookback - 1, n_train, stride),
        val=windows(train_stop - 1, n_val, 1),
        test=windows(val_stop - 1, n_test, 1),
        train_end=y.index[train_stop - 1],
        val_end=y.index[val_stop - 1],
        mase_scale=float(np.mean(np.abs(np.diff(train_prices)))),
    )


def _min_bars(lookback: int, horizon: int, val_fraction: float, test_fraction: float) -> int:
    """The fewest target values that give every split at least one window."""

    # A small search rather than a closed form: the rounding in the split makes one fiddly.
    def fits(n: int) -> bool:
        train_stop, val_stop = _split_stops(n, val_fraction, test_fraction)
        return min(_window_counts(n, lookback, horizon, train_stop, val_stop)) > 0

    return next(n for n in count(1) if fits(n))


def forecast_to_prices(
    scaled_forecast: np.ndarray, origin_prices: np.ndarray, scaler: Scaler, target: str
) -> np.ndarray:
    """Turn ``[n, horizon]`` scaled model output into ``[n, horizon]`` prices."""
    _check_target(target)
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
    # Returns compound from the origin: p_{t+k} = p_t * exp(r_{t+1} + ... + r_{t+k}).
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


def encoder_inputs(prices: pd.Series, *, lookback: int, scaler: Scaler, target: str) -> np.ndarray:
    """The ``[1, lookback, 1]`` float32 input for forecasting from the end of ``prices``."""
    y = target_series(prices, target)
    if len(y) < lookback:
        needed = lookback + 1 if target == "log_return" else lookback  # a return needs 2 prices
        raise DataError(
            f"price series too short to forecast: {len(prices)} bars available, need at least "
            f"{needed} bars for window.lookback = {lookback} with data.target = {target!r}"
        )
    return _model_inputs(y.to_numpy()[-lookback:], scaler)


def continuation_inputs(
    prices: pd.Series, *, previous_price: float, scaler: Scaler, target: str
) -> np.ndarray:
    """The ``[1, len(prices), 1]`` float32 input that carries a state over new bars ``prices``,
    the state having seen the bar that closed at ``previous_price``."""
    if len(prices) == 0:
        raise DataError("no new bars to carry the state over: pass at least one price")
    anchored = pd.Series(np.concatenate([[previous_price], prices.to_numpy(dtype=np.float64)]))
    return _model_inputs(target_series(anchored, target).to_numpy()[-len(prices) :], scaler)


def _model_inputs(y: np.ndarray, scaler: Scaler) -> np.ndarray:
    # Same float64 transform then float32 cast as make_dataset, so the values match exactly.
    return scaler.transform(y).astype(np.float32).reshape(1, len(y), 1)

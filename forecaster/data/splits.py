"""A price series split by time into training, validation and test parts.

The split is made on the series the model learns (log returns by default, which start one bar
after the prices): the first ``1 - val_fraction - test_fraction`` of its values are train, then
validation, then test. `TimeSplit` records where each part ends as positions in the *price*
series, so every model, whatever it learns from, sees the same parts and is scored at the same
forecast origins.

A forecast origin ``t`` is the last bar a forecast may use; it forecasts bars ``t+1 .. t+horizon``.
Validation origins are those whose every target lies in validation, test origins likewise; their
inputs may reach back into earlier parts, which is the past, not a leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import count

import numpy as np
import pandas as pd

from forecaster.errors import ConfigError, DataError

TARGETS = ("log_return", "price")


def check_target(target: str) -> None:
    if target not in TARGETS:
        raise ConfigError(f"data.target must be one of {TARGETS}, got {target!r}")


def target_offset(target: str) -> int:
    """How many prices come before the first target value: a log return needs two prices."""
    check_target(target)
    return 1 if target == "log_return" else 0


@dataclass
class WindowConfig:
    """The `window` config group: how windows are cut and how the series is split."""

    lookback: int = 60  # bars the encoder reads
    horizon: int = 5  # bars forecast
    stride: int = 1  # step between training windows (validation and test use every origin)
    val_fraction: float = 0.15  # chronological split: train, then validation, then test
    test_fraction: float = 0.15

    def __post_init__(self) -> None:
        for key in ("lookback", "horizon", "stride"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"window.{key} must be an integer >= 1, got {value!r}")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0 < value < 1:
                raise ConfigError(f"window.{key} must be in (0, 1), got {value!r}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "window.val_fraction + window.test_fraction must be < 1 to leave a training "
                f"part, got {self.val_fraction} + {self.test_fraction}"
            )


@dataclass(frozen=True)
class TimeSplit:
    """Where the parts of one price series end: positions in that series, end exclusive."""

    train_stop: int  # prices[:train_stop] is the training part
    val_stop: int  # prices[train_stop:val_stop] validation, prices[val_stop:] test
    size: int  # len(prices)
    train_end: pd.Timestamp  # date of the last training bar
    val_end: pd.Timestamp  # date of the last validation bar

    @classmethod
    def at(cls, prices: pd.Series, train_stop: int, val_stop: int) -> TimeSplit:
        return cls(
            train_stop=train_stop,
            val_stop=val_stop,
            size=len(prices),
            train_end=prices.index[train_stop - 1],
            val_end=prices.index[val_stop - 1],
        )

    def train(self, prices: pd.Series) -> pd.Series:
        return prices.iloc[: self.train_stop]

    def val(self, prices: pd.Series) -> pd.Series:
        return prices.iloc[self.train_stop : self.val_stop]

    def test(self, prices: pd.Series) -> pd.Series:
        return prices.iloc[self.val_stop :]

    def val_origins(self, horizon: int) -> np.ndarray:
        """Origins whose `horizon` targets all lie in validation."""
        return np.arange(self.train_stop - 1, self.val_stop - horizon)

    def test_origins(self, horizon: int) -> np.ndarray:
        """Origins whose `horizon` targets all lie in test."""
        return np.arange(self.val_stop - 1, self.size - horizon)


def _split_stops(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    """End positions (exclusive) of the train and validation parts of ``n`` target values."""
    # round(), not int(): 0.7 * 100 is 70.00000000000001 or 69.99999999999999 depending on how
    # the fractions were written, and the split should not depend on that.
    return round(n * (1 - val_fraction - test_fraction)), round(n * (1 - test_fraction))


def _window_counts(
    n: int, lookback: int, horizon: int, train_stop: int, val_stop: int
) -> tuple[int, int, int]:
    """Number of train / val / test origins (before striding) for ``n`` target values."""
    return (
        max(0, train_stop - lookback - horizon + 1),  # origins lookback-1 .. train_stop-1-horizon
        max(0, val_stop - train_stop - horizon + 1),  # origins train_stop-1 .. val_stop-1-horizon
        max(0, n - val_stop - horizon + 1),  # origins val_stop-1 .. n-1-horizon
    )


def time_split(prices: pd.Series, window: WindowConfig, target: str = "log_return") -> TimeSplit:
    """Split `prices` by `window`'s fractions; raise `DataError` when a part has no window."""
    offset = target_offset(target)
    n = len(prices) - offset
    train_stop, val_stop = _split_stops(n, window.val_fraction, window.test_fraction)
    counts = _window_counts(n, window.lookback, window.horizon, train_stop, val_stop)
    if min(counts) == 0:
        needed = _min_values(window) + offset
        raise DataError(
            f"price series too short: {len(prices)} bars available, need at least {needed} "
            f"bars. The split gives train {train_stop} / val {val_stop - train_stop} / test "
            f"{n - val_stop} {target} values; train needs window.lookback + window.horizon = "
            f"{window.lookback + window.horizon}, val and test need window.horizon = "
            f"{window.horizon} each. Use a longer series, lower window.lookback / "
            "window.horizon, or change window.val_fraction / window.test_fraction."
        )
    return TimeSplit.at(prices, train_stop + offset, val_stop + offset)


def _min_values(window: WindowConfig) -> int:
    """The fewest target values that give every split at least one window."""

    # A small search rather than a closed form: the rounding in the split makes one fiddly.
    def fits(n: int) -> bool:
        train_stop, val_stop = _split_stops(n, window.val_fraction, window.test_fraction)
        return min(_window_counts(n, window.lookback, window.horizon, train_stop, val_stop)) > 0

    return next(n for n in count(1) if fits(n))

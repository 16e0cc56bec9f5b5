"""The one protocol every forecaster implements, deep or not.

A forecaster learns from a past price series (`fit`) and forecasts the `horizon` prices after
each of a batch of origins (`predict`). An origin is a position in the price series; the forecast
from origin ``t`` may use ``prices[: t + 1]`` and nothing after it. `tests/test_models.py` runs
every registered forecaster through the same checks (shapes, no look-ahead, determinism for a
seed, clear errors).

A probabilistic forecaster also returns quantiles of the price at every step (`Forecast.quantiles`
at `Forecast.quantile_levels`), and its point forecast is their median. Quantiles of the price
follow from quantiles of the cumulative log return ``log(p_{t+h} / p_t)`` by ``p_t * exp(q)``
(a monotone map keeps every quantile a quantile); `check_quantiles` states what a forecast's
quantiles must satisfy, and every `Forecast` is checked against it when it is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
import pandas as pd

from forecaster.errors import ConfigError, DataError, NotFittedError

# The quantile levels a probabilistic forecast reports by default (the `model.quantiles` config
# key): the median, and the bounds of the central 50 %, 80 % and 90 % intervals.
QUANTILE_LEVELS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
MEDIAN = 0.5


@dataclass(frozen=True)
class Forecast:
    """Forecasts from a batch of origins, in prices."""

    origins: np.ndarray  # [n] positions in the price series
    prices: np.ndarray  # [n, horizon] point forecasts; a probabilistic model's median
    # Recurrent models only, per layer (c, h) each [n, num_units]: the state each forecast
    # started from (the encoder's final state, handed to the decoder) and the decoder's state
    # after its last step.
    encoder_state: tuple | None = None
    decoder_state: tuple | None = None
    # Probabilistic models only: quantiles of the price at every step, at `quantile_levels`
    # (increasing, in (0, 1), the median among them). None for a point forecast.
    quantile_levels: tuple[float, ...] | None = None
    quantiles: np.ndarray | None = None  # [n, horizon, len(quantile_levels)] prices

    def __post_init__(self) -> None:
        if (self.quantiles is None) != (self.quantile_levels is None):
            raise ValueError("a Forecast needs both quantile_levels and quantiles, or neither")
        if self.quantiles is not None:
            check_quantiles(self.quantile_levels, self.quantiles, self.prices)

    @classmethod
    def from_quantiles(
        cls, origins: np.ndarray, levels: Sequence[float], quantiles: np.ndarray, **states
    ) -> Forecast:
        """A probabilistic forecast: `quantiles` [n, horizon, Q] of the price at `levels`; the
        point forecast is the median."""
        levels = check_quantile_levels(levels, "quantile_levels")
        quantiles = np.asarray(quantiles, dtype=np.float64)
        if quantiles.ndim != 3:
            raise ValueError(f"quantiles must be [n, horizon, Q], got shape {quantiles.shape}")
        median = quantiles[..., levels.index(MEDIAN)]
        return cls(origins, median, quantile_levels=levels, quantiles=quantiles, **states)

    @property
    def is_probabilistic(self) -> bool:
        return self.quantiles is not None

    def quantiles_at(self, levels: Sequence[float]) -> np.ndarray:
        """[n, horizon, len(levels)]: the quantiles at `levels`, each one of this forecast's."""
        if self.quantiles is None:
            raise ValueError("a point forecast has no quantiles")
        return select_levels(self.quantile_levels, self.quantiles, levels)

    def __len__(self) -> int:
        return len(self.origins)


def check_quantile_levels(levels: Sequence[float], key: str) -> tuple[float, ...]:
    """`levels` as a tuple of floats: strictly increasing, each in (0, 1), the median (0.5)
    among them (it is the point forecast). `key` names the setting in the error."""
    try:
        values = tuple(float(level) for level in levels)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={levels!r} must be a list of numbers in (0, 1)") from None
    ok = (
        len(values) > 0
        and all(0.0 < level < 1.0 for level in values)
        and all(a < b for a, b in zip(values, values[1:], strict=False))
    )
    if not ok:
        raise ConfigError(
            f"{key}={list(values)!r} is invalid: expected increasing levels strictly between 0 "
            f"and 1, e.g. {list(QUANTILE_LEVELS)}."
        )
    if MEDIAN not in values:
        raise ConfigError(
            f"{key}={list(values)!r} lacks 0.5: the median is the point forecast, so it must be "
            "one of the levels."
        )
    return values


def check_quantiles(levels: Sequence[float], quantiles: np.ndarray, prices: np.ndarray) -> None:
    """What every probabilistic forecast satisfies: valid levels (`check_quantile_levels`),
    `quantiles` of shape [n, horizon, len(levels)], finite positive prices, no crossing (each
    quantile at least the one below it, at every origin and step), and `prices` equal to the
    median. A model that breaks this has a bug, so the error is a ValueError, not a DataError."""
    levels = check_quantile_levels(levels, "quantile_levels")
    quantiles, prices = np.asarray(quantiles), np.asarray(prices)
    if quantiles.shape != (*prices.shape, len(levels)):
        raise ValueError(
            f"quantiles must have shape [n, horizon, {len(levels)}] = "
            f"{(*prices.shape, len(levels))} (the point forecasts' and one per level), got "
            f"{quantiles.shape}"
        )
    if not (np.all(np.isfinite(quantiles)) and np.all(quantiles > 0)):
        raise ValueError("quantiles must be finite prices > 0")
    crossed = np.diff(quantiles, axis=-1) < 0
    if crossed.any():
        row, step, k = (int(i[0]) for i in np.nonzero(crossed))
        raise ValueError(
            f"quantiles cross: at row {row}, step {step + 1}, the {levels[k + 1]} quantile "
            f"{quantiles[row, step, k + 1]:.6g} is below the {levels[k]} quantile "
            f"{quantiles[row, step, k]:.6g}"
        )
    if not np.array_equal(prices, quantiles[..., levels.index(MEDIAN)]):
        raise ValueError("a probabilistic forecast's prices must be its median (level 0.5)")


def select_levels(
    levels: Sequence[float], quantiles: np.ndarray, wanted: Sequence[float]
) -> np.ndarray:
    """The columns of `quantiles` ([..., len(levels)]) at `wanted`, each one of `levels`."""
    levels = [float(level) for level in levels]
    missing = [w for w in wanted if float(w) not in levels]
    if missing:
        raise ValueError(f"the forecast has no quantile at level(s) {missing}; it has {levels}")
    return quantiles[..., [levels.index(float(w)) for w in wanted]]


class Forecaster(Protocol):
    horizon: int

    @property
    def min_history(self) -> int:
        """Bars needed up to and including an origin (the first origin is `min_history - 1`)."""
        ...

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        """Learn from `train`. `val` continues it in time and is only for choosing (early
        stopping, model selection), never for fitting weights; without it a model fits as
        configured and keeps what it ends with."""
        ...

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        """Forecast the `horizon` prices after each origin from `prices[: origin + 1]`."""
        ...


def check_fitted(model: object, attribute: str) -> None:
    """Raise `NotFittedError` unless `fit` has set `attribute` (scikit-learn's convention)."""
    if getattr(model, attribute, None) is None:
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet: call fit(train, val) before predict."
        )


def check_origins(prices: pd.Series, origins: np.ndarray, min_history: int) -> np.ndarray:
    """`origins` as int positions, each with `min_history` bars up to it, inside `prices`."""
    origins = np.asarray(origins)
    if origins.ndim != 1 or not np.issubdtype(origins.dtype, np.integer):
        raise DataError(
            f"origins must be a 1-D array of integer positions in the price series, got "
            f"{origins.dtype} with shape {origins.shape}"
        )
    early = origins < min_history - 1
    late = origins >= len(prices)
    if early.any() or late.any():
        bad = int(origins[early | late][0])
        raise DataError(
            f"cannot forecast from position {bad} of a {len(prices)}-bar series: this model "
            f"needs {min_history} bars up to an origin, so origins must lie in "
            f"[{min_history - 1}, {len(prices) - 1}]"
        )
    return origins.astype(np.int64)


def check_series(prices: pd.Series, name: str, min_length: int) -> None:
    """A fit input: a positive, finite price series of at least `min_length` bars."""
    values = np.asarray(prices, dtype=np.float64)
    if len(values) < min_length:
        raise DataError(
            f"{name} has {len(values)} bars; this model needs at least {min_length} to fit "
            "(window.lookback + window.horizon target values). Use a longer series or a "
            "shorter window."
        )
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise DataError(f"{name} must hold finite prices > 0")

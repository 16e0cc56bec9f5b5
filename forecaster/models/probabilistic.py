"""Probabilistic baselines: quantiles of the price at every step, behind the same protocol.

Each models the cumulative log return ``R_h = log(p_{t+h} / p_t)`` from an origin ``t`` and
forecasts the price's quantiles as ``p_t * exp(q_h)``, ``q_h`` being the quantiles of ``R_h``
(exact: exp is increasing, so it maps quantiles to quantiles). The median is the point forecast.

- `RandomWalkNormalForecaster`: the random walk with the window's volatility.
- `EmpiricalQuantileForecaster`: the training part's h-step log returns, as they came.
- GARCH(1,1) with Student-t innovations lives in `forecaster.models.garch` (arch takes ~3 s
  to import, so it is loaded only when asked for).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import norm

from forecaster.errors import ConfigError
from forecaster.models.base import (
    QUANTILE_LEVELS,
    Forecast,
    check_fitted,
    check_origins,
    check_quantile_levels,
    check_series,
)
from forecaster.models.baselines import RuleForecaster, check_positive_int, log_returns


def price_quantiles(origin_prices: np.ndarray, return_quantiles: np.ndarray) -> np.ndarray:
    """[n] origin prices and [n, horizon, Q] quantiles of the cumulative log return from each
    origin -> [n, horizon, Q] quantiles of the price."""
    return origin_prices[:, np.newaxis, np.newaxis] * np.exp(return_quantiles)


class RandomWalkNormalForecaster(RuleForecaster):
    """The random walk with the window's volatility: daily log returns independent and normal
    with mean 0 and the standard deviation (ddof 1) of the `lookback` daily log returns up to
    the origin (the same bars the seq2seq reads, `window.lookback`). So ``R_h ~ N(0, h s^2)``,
    the median is the origin's price (the naive forecast), and the interval widens like the
    square root of the step and breathes with the last `lookback` days' volatility."""

    def __init__(
        self,
        horizon: int = 5,
        lookback: int = 60,
        quantiles: Sequence[float] = QUANTILE_LEVELS,
    ) -> None:
        super().__init__(horizon)
        check_positive_int("window.lookback", lookback)
        if lookback < 2:
            raise ConfigError(
                f"window.lookback={lookback} is too short for rw_normal: a standard deviation "
                "needs at least 2 returns."
            )
        self.lookback = lookback
        self.quantiles = check_quantile_levels(quantiles, "model.quantiles")

    @property
    def min_history(self) -> int:
        return self.lookback + 1  # lookback returns need one more price

    def _forecast(self, prices: np.ndarray, origins: np.ndarray) -> Forecast:
        # Row j holds r_{j+1} .. r_{j+lookback}, the returns of the window that ends at price j+L.
        windows = sliding_window_view(log_returns(prices), self.lookback)[origins - self.lookback]
        volatility = windows.std(axis=1, ddof=1)
        steps = np.sqrt(np.arange(1, self.horizon + 1))
        z = norm.ppf(self.quantiles)  # exactly 0 at the median
        returns = volatility[:, None, None] * steps[None, :, None] * z[None, None, :]
        return Forecast.from_quantiles(
            origins, self.quantiles, price_quantiles(prices[origins], returns)
        )


class EmpiricalQuantileForecaster:
    """The empirical quantiles of the training part's h-step log returns, for each step h: every
    overlapping ``log(p_{i+h} / p_i)`` in the training series (not the validation part, which is
    for choosing, not fitting). The same return quantiles apply at every origin, so the interval
    is a fixed percentage of the origin's price: the training years' volatility and drift, with
    their fat tails, but no volatility clustering."""

    min_history = 1
    min_samples = 20  # h-step returns at the longest step, below which quantiles mean little

    def __init__(self, horizon: int = 5, quantiles: Sequence[float] = QUANTILE_LEVELS) -> None:
        check_positive_int("window.horizon", horizon)
        self.horizon = horizon
        self.quantiles = check_quantile_levels(quantiles, "model.quantiles")
        self.return_quantiles_: np.ndarray | None = None

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        check_series(train, "the training series", self.horizon + self.min_samples)
        log_prices = np.log(np.asarray(train, dtype=np.float64))
        # [horizon, Q]: row h-1 holds the quantiles of the h-step log returns.
        self.return_quantiles_ = np.array(
            [
                np.quantile(log_prices[h:] - log_prices[:-h], self.quantiles)
                for h in range(1, self.horizon + 1)
            ]
        )
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "return_quantiles_")
        origins = check_origins(prices, origins, self.min_history)
        origin_prices = np.asarray(prices, dtype=np.float64)[origins]
        returns = np.broadcast_to(
            self.return_quantiles_, (len(origins), *self.return_quantiles_.shape)
        )
        return Forecast.from_quantiles(
            origins, self.quantiles, price_quantiles(origin_prices, returns)
        )

"""Baselines: the simple forecasters a model has to beat, behind the same protocol.

Daily prices are close to a random walk, so these are hard to beat, and a model that cannot
must say so. All of them forecast prices; those that model returns work with log returns
``r_t = log(p_t / p_{t-1})`` and compound them from the origin's price.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from forecaster.errors import ConfigError
from forecaster.models.base import Forecast, check_fitted, check_origins, check_series


def check_positive_int(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{key} must be an integer >= 1, got {value!r}")


def log_returns(prices: pd.Series | np.ndarray) -> np.ndarray:
    p = np.asarray(prices, dtype=np.float64)
    return np.log(p[1:] / p[:-1])


def compound(origin_prices: np.ndarray, returns: np.ndarray) -> np.ndarray:
    """[n] origin prices and [n, horizon] log returns after them -> [n, horizon] prices."""
    return origin_prices[:, np.newaxis] * np.exp(np.cumsum(returns, axis=1))


class RuleForecaster:
    """A forecaster with nothing to learn: `fit` only checks the training series holds
    `min_history` prices; `predict` applies the rule (`_forecast`) to the prices up to each
    origin."""

    min_history = 1

    def __init__(self, horizon: int = 5) -> None:
        check_positive_int("window.horizon", horizon)
        self.horizon = horizon
        self.fitted_: bool | None = None

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        check_series(train, "the training series", self.min_history)
        self.fitted_ = True
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "fitted_")
        origins = check_origins(prices, origins, self.min_history)
        return self._forecast(np.asarray(prices, dtype=np.float64), origins)

    def _forecast(self, prices: np.ndarray, origins: np.ndarray) -> Forecast:
        raise NotImplementedError


class NaiveForecaster(RuleForecaster):
    """The random walk: every future price equals the origin's. The bar every model must clear."""

    def _forecast(self, prices: np.ndarray, origins: np.ndarray) -> Forecast:
        last = prices[origins]
        return Forecast(origins, np.repeat(last[:, np.newaxis], self.horizon, axis=1))


class DriftForecaster(RuleForecaster):
    """The random walk with drift: the straight line through the first price of the series and
    the origin's, extended `horizon` bars (Hyndman and Athanasopoulos' drift method). It uses the
    whole history up to each origin, so its slope moves as the series grows."""

    min_history = 2

    def _forecast(self, p: np.ndarray, origins: np.ndarray) -> Forecast:
        slope = (p[origins] - p[0]) / origins
        steps = np.arange(1, self.horizon + 1)
        return Forecast(origins, p[origins][:, np.newaxis] + slope[:, np.newaxis] * steps)


class MeanReturnForecaster:
    """Compounds the training part's mean daily log return: ``p_t * exp(h * mean(r))``. The
    drift a model learns from its training years, without anything else."""

    min_history = 1

    def __init__(self, horizon: int = 5) -> None:
        check_positive_int("window.horizon", horizon)
        self.horizon = horizon
        self.mean_return_: float | None = None

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        check_series(train, "the training series", 2)
        self.mean_return_ = float(np.mean(log_returns(train)))
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "mean_return_")
        origins = check_origins(prices, origins, self.min_history)
        origin_prices = np.asarray(prices, dtype=np.float64)[origins]
        returns = np.full((len(origins), self.horizon), self.mean_return_)
        return Forecast(origins, compound(origin_prices, returns))


class RidgeForecaster:
    """Ridge regression of the next `horizon` log returns on the last `lookback` ones: direct
    (one output per step, no feedback of its own forecasts), the linear model a sequence model
    must beat.

    The regularisation strength is chosen by time-series cross-validation on the training
    windows only (scikit-learn's `TimeSeriesSplit`, with a gap of `horizon - 1` windows so that
    no validation target is also a training target), then the model is refitted on all of them.
    Inputs are standardised with a scaler fitted inside each fold.
    """

    def __init__(
        self,
        horizon: int = 5,
        lookback: int = 60,
        alphas: tuple[float, ...] = tuple(np.logspace(-1, 5, 13)),
        cv_splits: int = 5,
    ) -> None:
        check_positive_int("window.horizon", horizon)
        check_positive_int("window.lookback", lookback)
        check_positive_int("cv_splits", cv_splits)
        self.horizon = horizon
        self.lookback = lookback
        self.alphas = alphas
        self.cv_splits = cv_splits
        self.model_ = None

    @property
    def min_history(self) -> int:
        return self.lookback + 1  # lookback returns need one more price

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        windows_needed = (self.cv_splits + 1) * self.horizon
        check_series(train, "the training series", self.min_history + self.horizon + windows_needed)
        rows = sliding_window_view(log_returns(train), self.lookback + self.horizon)
        inputs, targets = rows[:, : self.lookback], rows[:, self.lookback :]
        search = GridSearchCV(
            make_pipeline(StandardScaler(), Ridge()),
            {"ridge__alpha": list(self.alphas)},
            cv=TimeSeriesSplit(n_splits=self.cv_splits, gap=self.horizon - 1),
            scoring="neg_mean_squared_error",
        )
        search.fit(inputs, targets)
        self.model_ = search.best_estimator_
        self.alpha_ = float(search.best_params_["ridge__alpha"])
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "model_")
        origins = check_origins(prices, origins, self.min_history)
        # Row j holds r_{j+1} .. r_{j+lookback}, the returns of the window that ends at price j+L.
        rows = sliding_window_view(log_returns(prices), self.lookback)
        returns = self.model_.predict(rows[origins - self.lookback])
        origin_prices = np.asarray(prices, dtype=np.float64)[origins]
        return Forecast(origins, compound(origin_prices, returns.reshape(len(origins), -1)))

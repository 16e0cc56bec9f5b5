"""Baselines: the simple forecasters a model has to beat, behind the same protocol."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from forecaster.errors import ConfigError
from forecaster.models.base import Forecast, check_fitted, check_origins, check_series


class NaiveForecaster:
    """The random walk: every future price equals the origin's. Daily prices are close to a
    random walk, so this is the bar every model is measured against."""

    min_history = 1

    def __init__(self, horizon: int = 5) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ConfigError(f"window.horizon must be an integer >= 1, got {horizon!r}")
        self.horizon = horizon
        self.fitted_: bool | None = None

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        check_series(train, "the training series", 1)
        self.fitted_ = True
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "fitted_")
        origins = check_origins(prices, origins, self.min_history)
        last = np.asarray(prices, dtype=np.float64)[origins]
        return Forecast(origins, np.repeat(last[:, np.newaxis], self.horizon, axis=1))

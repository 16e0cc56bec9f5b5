"""Exponential smoothing and ARIMA baselines, from Nixtla's statsforecast.

Each model is chosen and estimated once per `fit`, on the log prices of the training part
(AutoETS picks the error/trend form by AICc, AutoARIMA the orders); at each origin the fitted
model is then run through the log prices up to that origin (statsforecast's `forward`, which
keeps the estimated parameters and updates only the model's state) and forecasts from there.
So every origin uses all the data it may, and no origin pays for a re-estimation. Working in
log prices keeps forecasts positive and errors proportional to the price level; the
exponentiated mean log forecast is the forecast's median in prices.

Importing statsforecast takes a few seconds, so this module is imported only when one of
these baselines is asked for (`forecaster.models.REGISTRY` names it lazily).
"""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from statsforecast.models import AutoARIMA, AutoETS

from forecaster.models.base import Forecast, check_fitted, check_origins, check_series
from forecaster.models.baselines import check_positive_int


class _StatsForecastModel:
    min_history = 2
    min_train = 30  # below this the automatic model selection has too little to go on

    def __init__(self, horizon: int = 5) -> None:
        check_positive_int("window.horizon", horizon)
        self.horizon = horizon
        self.model_ = None

    def _new_model(self):
        raise NotImplementedError

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        check_series(train, "the training series", self.min_train)
        self.model_ = self._new_model().fit(np.log(np.asarray(train, dtype=np.float64)))
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "model_")
        origins = check_origins(prices, origins, self.min_history)
        log_prices = np.log(np.asarray(prices, dtype=np.float64))
        forecasts = np.array(
            [self.model_.forward(y=log_prices[: t + 1], h=self.horizon)["mean"] for t in origins]
        ).reshape(len(origins), self.horizon)
        return Forecast(origins, np.exp(forecasts))


class AutoETSForecaster(_StatsForecastModel):
    """statsforecast's AutoETS (no seasonality: daily prices have none to speak of)."""

    def _new_model(self):
        return AutoETS(season_length=1)


class AutoARIMAForecaster(_StatsForecastModel):
    """statsforecast's AutoARIMA (no seasonality)."""

    def _new_model(self):
        return AutoARIMA(season_length=1)

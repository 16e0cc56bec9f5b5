"""Score a forecaster and the naive random walk on exactly the same test origins, in prices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.data.splits import TimeSplit
from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale
from forecaster.models.base import Forecast, Forecaster
from forecaster.models.baselines import NaiveForecaster


@dataclass(frozen=True)
class Evaluation:
    forecast: Forecast  # the model's, one row per test origin
    actual_prices: np.ndarray  # [n, horizon] what happened after each origin
    metrics: dict[str, float]  # the model's test metrics
    naive_metrics: dict[str, float]  # the random walk's, same origins

    @staticmethod
    def tracked_names() -> list[str]:
        """The keys of `tracked_metrics`."""
        return [
            *(f"test_{name}" for name in METRIC_NAMES),
            *(f"naive_test_{name}" for name in METRIC_NAMES),
            "test_rmse_skill",
        ]

    @property
    def tracked_metrics(self) -> dict[str, float]:
        """Flat names for tracking: test_mae, ..., naive_test_mae, ..., test_rmse_skill."""
        flat = {f"test_{k}": v for k, v in self.metrics.items()}
        flat |= {f"naive_test_{k}": v for k, v in self.naive_metrics.items()}
        # Skill > 0: the model beats the random walk; 1 - rmse / naive rmse.
        flat["test_rmse_skill"] = 1.0 - self.metrics["rmse"] / self.naive_metrics["rmse"]
        return flat


def evaluate(forecaster: Forecaster, prices: pd.Series, split: TimeSplit) -> Evaluation:
    """Forecast from every test origin of `split` and score it against the random walk."""
    horizon = forecaster.horizon
    origins = split.test_origins(horizon)
    p = np.asarray(prices, dtype=np.float64)
    actual = p[origins[:, np.newaxis] + np.arange(1, horizon + 1)]
    scale = mase_scale(split.train(prices))

    def score(forecast: Forecast) -> dict[str, float]:
        return forecast_metrics(forecast.prices, actual, p[origins], scale)

    forecast = forecaster.predict(prices, origins)
    naive = NaiveForecaster(horizon).fit(split.train(prices)).predict(prices, origins)
    return Evaluation(forecast, actual, score(forecast), score(naive))

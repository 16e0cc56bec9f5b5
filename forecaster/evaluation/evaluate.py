"""Score a forecaster and its baselines on exactly the same test origins, in prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.data.splits import TimeSplit
from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale
from forecaster.models.base import Forecast, Forecaster
from forecaster.models.baselines import NaiveForecaster

REFERENCE = "naive"  # the random walk: always scored, the bar every model must clear


@dataclass(frozen=True)
class Evaluation:
    forecast: Forecast  # the model's, one row per test origin
    actual_prices: np.ndarray  # [n, horizon] what happened after each origin
    metrics: dict[str, float]  # the model's test metrics
    baseline_metrics: dict[str, dict[str, float]]  # each baseline's, same origins; naive first

    @property
    def naive_metrics(self) -> dict[str, float]:
        return self.baseline_metrics[REFERENCE]

    @property
    def best_baseline(self) -> str:
        """The baseline with the lowest test MAE."""
        return min(self.baseline_metrics, key=lambda name: self.baseline_metrics[name]["mae"])

    @staticmethod
    def tracked_names(baselines: list[str]) -> list[str]:
        """The keys of `tracked_metrics` when scored against `baselines`."""
        names = [REFERENCE, *(b for b in baselines if b != REFERENCE)]
        return [
            *(f"test_{metric}" for metric in METRIC_NAMES),
            *(f"{name}_test_{metric}" for name in names for metric in METRIC_NAMES),
            "test_rmse_skill",
            "test_skill_vs_best_baseline",
        ]

    @property
    def tracked_metrics(self) -> dict[str, float]:
        """Flat names for tracking: test_mae, ..., naive_test_mae, drift_test_mae, ...,
        test_rmse_skill (1 - RMSE / the random walk's: > 0 beats it) and
        test_skill_vs_best_baseline (1 - MAE / the best baseline's MAE: > 0 beats them all)."""
        flat = {f"test_{k}": v for k, v in self.metrics.items()}
        for name, metrics in self.baseline_metrics.items():
            flat |= {f"{name}_test_{k}": v for k, v in metrics.items()}
        flat["test_rmse_skill"] = 1.0 - self.metrics["rmse"] / self.naive_metrics["rmse"]
        best = self.baseline_metrics[self.best_baseline]["mae"]
        flat["test_skill_vs_best_baseline"] = 1.0 - self.metrics["mae"] / best
        return flat


def evaluate(
    forecaster: Forecaster,
    prices: pd.Series,
    split: TimeSplit,
    baselines: Mapping[str, Forecaster] | None = None,
) -> Evaluation:
    """Forecast from every test origin of `split` with the (fitted) forecaster, fit each of
    `baselines` (unfitted) on the same training and validation parts, and score them all on the
    same origins. The random walk is always among the baselines."""
    horizon = forecaster.horizon
    origins = split.test_origins(horizon)
    p = np.asarray(prices, dtype=np.float64)
    actual = p[origins[:, np.newaxis] + np.arange(1, horizon + 1)]
    scale = mase_scale(split.train(prices))

    def score(forecast: Forecast) -> dict[str, float]:
        return forecast_metrics(forecast.prices, actual, p[origins], scale)

    forecast = forecaster.predict(prices, origins)
    others = {REFERENCE: NaiveForecaster(horizon), **(baselines or {})}
    baseline_metrics = {
        name: score(model.fit(split.train(prices), split.val(prices)).predict(prices, origins))
        for name, model in others.items()
    }
    return Evaluation(forecast, actual, score(forecast), baseline_metrics)

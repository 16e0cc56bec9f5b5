"""Score a forecaster and its baselines on exactly the same test origins, in prices; those that
forecast quantiles also as distributions (`evaluation.probabilistic`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.data.splits import TimeSplit
from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale
from forecaster.evaluation.probabilistic import PROBABILISTIC_METRIC_NAMES, score_quantiles
from forecaster.models import PROBABILISTIC_BASELINES
from forecaster.models.base import QUANTILE_LEVELS, Forecast, Forecaster
from forecaster.models.baselines import NaiveForecaster

REFERENCE = "naive"  # the random walk: always scored, the bar every model must clear
MODEL = "model"  # the evaluated forecaster's name in tables and figures


@dataclass(frozen=True)
class Evaluation:
    forecast: Forecast  # the model's, one row per test origin
    actual_prices: np.ndarray  # [n, horizon] what happened after each origin
    metrics: dict[str, float]  # the model's test metrics (with the interval scores if it has them)
    baseline_metrics: dict[str, dict[str, float]]  # each baseline's, same origins; naive first
    baseline_forecasts: dict[str, Forecast] = field(default_factory=dict)
    # One row per probabilistic model (MODEL or a baseline's name) and step: the interval scores.
    intervals_by_step: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def probabilistic_forecasts(self) -> dict[str, Forecast]:
        """The forecasts with quantiles, the model's (as MODEL) first."""
        forecasts = {MODEL: self.forecast, **self.baseline_forecasts}
        return {name: f for name, f in forecasts.items() if f.is_probabilistic}

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
            *(
                f"{name}_test_{metric}"
                for name in names
                if name in PROBABILISTIC_BASELINES
                for metric in PROBABILISTIC_METRIC_NAMES
            ),
            "best_baseline_test_mae",
            "test_rmse_skill",
            "test_skill_vs_best_baseline",
        ]

    @property
    def tracked_metrics(self) -> dict[str, float]:
        """Flat names for tracking: test_mae, ..., naive_test_mae, drift_test_mae, ...,
        best_baseline_test_mae (the lowest baseline MAE, whichever baseline it is: one column in
        the runs table), test_rmse_skill (1 - RMSE / the random walk's: > 0 beats it) and
        test_skill_vs_best_baseline (1 - MAE / the best baseline's MAE: > 0 beats them all)."""
        flat = {f"test_{k}": v for k, v in self.metrics.items()}
        for name, metrics in self.baseline_metrics.items():
            flat |= {f"{name}_test_{k}": v for k, v in metrics.items()}
        flat["test_rmse_skill"] = 1.0 - self.metrics["rmse"] / self.naive_metrics["rmse"]
        best = self.baseline_metrics[self.best_baseline]["mae"]
        flat["best_baseline_test_mae"] = best
        flat["test_skill_vs_best_baseline"] = 1.0 - self.metrics["mae"] / best
        return flat


def evaluate(
    forecaster: Forecaster,
    prices: pd.Series,
    split: TimeSplit,
    baselines: Mapping[str, Forecaster] | None = None,
    reported_levels: Sequence[float] = QUANTILE_LEVELS,
) -> Evaluation:
    """Forecast from every test origin of `split` with the (fitted) forecaster, fit each of
    `baselines` (unfitted) on the same training and validation parts, and score them all on the
    same origins. The random walk is always among the baselines. Forecasts with quantiles are
    also scored as distributions, the pinball loss over `reported_levels` (`model.quantiles`)."""
    horizon = forecaster.horizon
    origins = split.test_origins(horizon)
    p = np.asarray(prices, dtype=np.float64)
    actual = p[origins[:, np.newaxis] + np.arange(1, horizon + 1)]
    scale = mase_scale(split.train(prices))

    forecast = forecaster.predict(prices, origins)
    others = {REFERENCE: NaiveForecaster(horizon), **(baselines or {})}
    baseline_forecasts = {
        name: model.fit(split.train(prices), split.val(prices)).predict(prices, origins)
        for name, model in others.items()
    }
    forecasts = {MODEL: forecast, **baseline_forecasts}
    intervals = {
        name: score_quantiles(f.quantiles, f.quantile_levels, actual, p[origins], reported_levels)
        for name, f in forecasts.items()
        if f.is_probabilistic
    }
    metrics = {
        name: forecast_metrics(f.prices, actual, p[origins], scale)
        | (intervals[name].summary() if name in intervals else {})
        for name, f in forecasts.items()
    }
    steps = [
        {"model": name, "step": k + 1} | row
        for name, scores in intervals.items()
        for k, row in enumerate(scores.by_step())
    ]
    return Evaluation(
        forecast,
        actual,
        metrics.pop(MODEL),
        metrics,
        baseline_forecasts,
        pd.DataFrame(steps),
    )

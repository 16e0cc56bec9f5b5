"""Score a forecaster and its baselines on exactly the same test origins, in prices; those that
forecast quantiles also as distributions (`evaluation.probabilistic`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.data.splits import TimeSplit
from forecaster.errors import TrainingDivergedError
from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale
from forecaster.evaluation.probabilistic import PROBABILISTIC_METRIC_NAMES, score_quantiles
from forecaster.models import PROBABILISTIC_BASELINES
from forecaster.models.base import QUANTILE_LEVELS, Forecast, Forecaster
from forecaster.models.baselines import NaiveForecaster

REFERENCE = "naive"  # the random walk: always scored, the bar every model must clear
# The interval scores that need a central interval's bounds among a forecast's levels.
INTERVAL_ONLY = ("coverage_80", "coverage_90", "width_90", "winkler_90", "winkler_90_scaled")
MODEL = "model"  # the evaluated forecaster's name in tables and figures

# A warning when one bar makes up more than this share of what a metric sums: the metric then
# describes that bar (often a data error), not the model.
DOMINANT_SHARE = 0.5


@dataclass(frozen=True)
class Evaluation:
    forecast: Forecast  # the model's, one row per test origin
    actual_prices: np.ndarray  # [n, horizon] what happened after each origin
    metrics: dict[str, float]  # the model's test metrics (with the interval scores if it has them)
    baseline_metrics: dict[str, dict[str, float]]  # each baseline's, same origins; naive first
    baseline_forecasts: dict[str, Forecast] = field(default_factory=dict)
    # One row per probabilistic model (MODEL or a baseline's name) and step: the interval scores.
    intervals_by_step: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Tracked metric name -> why one bar, named, decides its value (`single_bar_warnings`).
    warnings: dict[str, str] = field(default_factory=dict)

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
    _check_finite(forecast, prices)
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
    evaluation = Evaluation(
        forecast, actual, metrics.pop(MODEL), metrics, baseline_forecasts, pd.DataFrame(steps)
    )
    tracked = evaluation.tracked_metrics
    # An interval whose bounds are not among a forecast's levels (model.quantiles without 0.05
    # and 0.95, say) scores NaN by design; an overflow shows in every other metric too.
    not_finite = [
        name
        for name, value in tracked.items()
        if not np.isfinite(value) and not name.endswith(INTERVAL_ONLY)
    ]
    if not_finite:
        raise TrainingDivergedError(
            f"test metrics {not_finite} are not finite ({[tracked[n] for n in not_finite]}); "
            "the prices are too large or too small for float64 arithmetic. Fix: rescale the "
            "price column (e.g. divide it by a power of 10) in data.path."
        )
    naive = baseline_forecasts[REFERENCE]
    warnings = single_bar_warnings(prices, split, forecast, naive, actual)
    return dataclasses.replace(evaluation, warnings=warnings)


def _check_finite(forecast: Forecast, prices: pd.Series) -> None:
    """A forecast that overflowed (inf) or is NaN means the fitted model is unusable: say so,
    rather than let it surface as NaN metrics of a FINISHED run."""
    bad = ~np.isfinite(forecast.prices)
    if bad.any():
        row, step = np.argwhere(bad)[0]
        origin = int(forecast.origins[row])
        raise TrainingDivergedError(
            f"the model's test forecasts are not finite ({int(bad.sum())} of {bad.size} values; "
            f"the first is {forecast.prices[row, step]} for step {step + 1} from the bar of "
            f"{_bar(prices, origin)}): the fitted model diverged although its losses stayed "
            "finite. Fix: lower train.learning_rate (or train.clip_norm)."
        )


def single_bar_warnings(
    prices: pd.Series,
    split: TimeSplit,
    forecast: Forecast,
    naive: Forecast,
    actual: np.ndarray,
) -> dict[str, str]:
    """Metrics that one bar decides. MASE divides by the training prices' mean one-step move,
    which a single outlier there inflates (MASE near 0); RMSE squares errors, so one wild test
    bar can make it (and the skill) whatever that bar says."""
    warnings = {}
    p = np.asarray(prices, dtype=np.float64)
    moves = np.abs(np.diff(p[: split.train_stop]))
    # A bar's part: the moves into and out of it (a one-bar spike makes both).
    around = np.concatenate([moves, [0.0]]) + np.concatenate([[0.0], moves])
    share, bar = _largest_share(around, total=float(np.sum(moves)))
    if share > DOMINANT_SHARE:
        warnings["test_mase"] = (
            f"test_mase, naive_test_mase: the moves into and out of the training bar of "
            f"{_bar(prices, bar)} (price {p[bar]:.6g}) are {share:.1%} of the training prices' "
            "one-step moves, which scale MASE: this one bar decides the metric. Check that bar "
            "in the data."
        )
    for name, predicted in (("test_rmse", forecast), ("naive_test_rmse", naive)):
        targets = forecast.origins[:, np.newaxis] + np.arange(1, forecast.prices.shape[1] + 1)
        errors = np.abs(predicted.prices - actual)
        largest = errors.max()
        if largest == 0:
            continue
        # Squared error summed per target bar (scaled first: prices near 1e300 must not overflow).
        per_bar = np.bincount(targets.ravel(), weights=((errors / largest) ** 2).ravel())
        share, bar = _largest_share(per_bar)
        if share > DOMINANT_SHARE:
            warnings[name] = (
                f"{name}: the bar of {_bar(prices, bar)} (price {p[bar]:.6g}) makes up "
                f"{share:.1%} of the squared forecast error: this one bar decides the metric "
                "(and test_rmse_skill). Check that bar in the data."
            )
    return warnings


def _largest_share(values: np.ndarray, total: float | None = None) -> tuple[float, int]:
    total = float(np.sum(values)) if total is None else total
    if not total > 0:
        return 0.0, 0
    i = int(np.argmax(values))
    return float(values[i]) / total, i


def _bar(prices: pd.Series, position: int) -> str:
    label = prices.index[position]
    return (
        f"{label:%Y-%m-%d %H:%M}".removesuffix(" 00:00") if hasattr(label, "hour") else str(label)
    )

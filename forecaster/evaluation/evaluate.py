"""Score a forecaster and the naive random walk on exactly the same test origins, in prices."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.data.splits import TimeSplit
from forecaster.errors import TrainingDivergedError
from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale
from forecaster.models.base import Forecast, Forecaster
from forecaster.models.baselines import NaiveForecaster

# A warning when one bar makes up more than this share of what a metric sums: the metric then
# describes that bar (often a data error), not the model.
DOMINANT_SHARE = 0.5


@dataclass(frozen=True)
class Evaluation:
    forecast: Forecast  # the model's, one row per test origin
    actual_prices: np.ndarray  # [n, horizon] what happened after each origin
    metrics: dict[str, float]  # the model's test metrics
    naive_metrics: dict[str, float]  # the random walk's, same origins
    # Tracked metric name -> why one bar, named, decides its value (`single_bar_warnings`).
    warnings: dict[str, str] = field(default_factory=dict)

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
    _check_finite(forecast, prices)
    naive = NaiveForecaster(horizon).fit(split.train(prices)).predict(prices, origins)
    evaluation = Evaluation(forecast, actual, score(forecast), score(naive))
    tracked = evaluation.tracked_metrics
    not_finite = [name for name, value in tracked.items() if not np.isfinite(value)]
    if not_finite:
        raise TrainingDivergedError(
            f"test metrics {not_finite} are not finite ({[tracked[n] for n in not_finite]}); "
            "the prices are too large or too small for float64 arithmetic. Fix: rescale the "
            "price column (e.g. divide it by a power of 10) in data.path."
        )
    warnings = single_bar_warnings(prices, split, forecast, naive, actual)
    return Evaluation(forecast, actual, evaluation.metrics, evaluation.naive_metrics, warnings)


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

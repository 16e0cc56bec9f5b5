"""Interval forecasts where a user looks: `evaluate` (what `train` logs) and the figures, which
must draw what the scores say."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from forecaster.data import WindowConfig, time_split
from forecaster.data.synthetic import generate_prices
from forecaster.evaluation import Evaluation, evaluate
from forecaster.evaluation.backtest import BacktestConfig, walk_forward
from forecaster.evaluation.evaluate import MODEL
from forecaster.evaluation.plots import (
    backtest_fan_figure,
    calibration_figure,
    forecast_figure,
    pit_figure,
)
from forecaster.evaluation.probabilistic import (
    PROBABILISTIC_METRIC_NAMES,
    pit_histogram,
    scoring_levels,
    share_below,
)
from forecaster.models import create
from forecaster.models.base import QUANTILE_LEVELS

HORIZON = 5


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    return generate_prices(n_days=900, seed=4).set_index("Date")["Adj Close"]


@pytest.fixture(scope="module")
def evaluation(prices) -> Evaluation:
    """A probabilistic model (the random walk with the window's volatility) scored beside a point
    baseline and a probabilistic one, as `train` does."""
    split = time_split(prices, WindowConfig(lookback=20, horizon=HORIZON))
    levels = scoring_levels(QUANTILE_LEVELS)
    model = create("rw_normal", horizon=HORIZON, lookback=20, quantiles=levels)
    model.fit(split.train(prices), split.val(prices))
    baselines = {
        "drift": create("drift", horizon=HORIZON),
        "empirical_quantiles": create("empirical_quantiles", horizon=HORIZON, quantiles=levels),
    }
    return evaluate(model, prices, split, baselines)


def test_evaluate_scores_every_probabilistic_forecast_overall_and_by_step(evaluation):
    assert list(evaluation.probabilistic_forecasts) == [MODEL, "empirical_quantiles"]
    flat = evaluation.tracked_metrics
    for metric in PROBABILISTIC_METRIC_NAMES:
        assert np.isfinite(flat[f"test_{metric}"])
        assert np.isfinite(flat[f"empirical_quantiles_test_{metric}"])
        assert f"drift_test_{metric}" not in flat and f"naive_test_{metric}" not in flat
    names = Evaluation.tracked_names(["drift", "empirical_quantiles"])
    assert "empirical_quantiles_test_crps_scaled" in names
    assert "drift_test_crps_scaled" not in names
    steps = evaluation.intervals_by_step
    assert list(steps[["model", "step"]].itertuples(index=False, name=None)) == [
        (name, k) for name in (MODEL, "empirical_quantiles") for k in range(1, HORIZON + 1)
    ]
    model_steps = steps[steps["model"] == MODEL]
    assert model_steps["crps"].mean() == pytest.approx(evaluation.metrics["crps"])
    # The random walk's median is the naive forecast, so their MAEs are the same.
    assert evaluation.metrics["mae"] == evaluation.naive_metrics["mae"]


def test_a_probabilistic_forecast_is_drawn_as_a_fan(prices, evaluation):
    figure = forecast_figure(prices, evaluation, n_origins=2, history_bars=30)
    for ax in figure.axes:
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 3  # 90, 80 and 50 % intervals
        labels = ax.get_legend_handles_labels()[1]
        assert {"90% interval", "80% interval", "50% interval", "forecast median"} <= set(labels)
    plt.close(figure)
    point = Evaluation(
        evaluation.baseline_forecasts["drift"],
        evaluation.actual_prices,
        evaluation.baseline_metrics["drift"],
        evaluation.baseline_metrics,
    )
    figure = forecast_figure(prices, point, n_origins=2)
    assert not any(isinstance(c, PolyCollection) for ax in figure.axes for c in ax.collections)
    plt.close(figure)


def test_the_calibration_plot_shows_the_share_of_actuals_below_each_quantile(evaluation):
    forecasts, actual = evaluation.probabilistic_forecasts, evaluation.actual_prices
    figure = calibration_figure(forecasts, actual, QUANTILE_LEVELS)
    levels_ax, steps_ax = figure.axes
    lines = {line.get_label(): line for line in levels_ax.get_lines()}
    for name, forecast in forecasts.items():
        expected = share_below(forecast.quantiles_at(QUANTILE_LEVELS), actual).mean(axis=0)
        np.testing.assert_allclose(lines[name].get_ydata(), expected)
    coverage = {line.get_label(): line.get_ydata() for line in steps_ax.get_lines()}
    steps = evaluation.intervals_by_step.set_index(["model", "step"])
    np.testing.assert_allclose(coverage[f"{MODEL} 90%"], steps.loc[MODEL, "coverage_90"])
    plt.close(figure)


def test_the_pit_histogram_draws_the_pit_density_of_each_model(evaluation):
    forecasts, actual = evaluation.probabilistic_forecasts, evaluation.actual_prices
    figure = pit_figure(forecasts, actual)
    for ax, forecast in zip(figure.axes, forecasts.values(), strict=False):
        _, density = pit_histogram(forecast.quantiles, forecast.quantile_levels, actual)
        np.testing.assert_allclose([bar.get_height() for bar in ax.patches], density)
    plt.close(figure)


def test_the_backtest_fan_chart_tiles_each_models_last_forecasts(prices):
    levels = scoring_levels(QUANTILE_LEVELS)
    factories = {
        "rw_normal": lambda: create("rw_normal", horizon=HORIZON, lookback=20, quantiles=levels),
        "garch_t": lambda: create("garch_t", horizon=HORIZON, quantiles=levels, simulations=500),
    }
    config = BacktestConfig(models=list(factories), stride=2)  # overlapping targets
    result = walk_forward(prices, factories, config, HORIZON)
    figure = backtest_fan_figure(result, fans=6)
    assert [ax.get_title().split(":")[0] for ax in figure.axes] == ["rw_normal", "garch_t"]
    for ax in figure.axes:
        fans = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(fans) == 3 * 6  # three bands per fan; fans a horizon apart, not every origin
        starts = sorted({float(c.get_paths()[0].vertices[:, 0].min()) for c in fans})
        assert np.all(np.diff(starts) >= HORIZON)  # at least a horizon (in days) apart
    plt.close(figure)

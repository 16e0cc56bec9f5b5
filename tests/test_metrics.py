"""Specification of forecaster.evaluation.metrics on a 2 x 3 example small enough to compute by
hand."""

import numpy as np
import pandas as pd
import pytest

from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale
from forecaster.models.baselines import NaiveForecaster

ORIGIN = np.array([10.0, 20.0])
FORECAST = np.array([[11.0, 12.0, 9.0], [19.0, 19.0, 20.0]])
ACTUAL = np.array([[12.0, 12.0, 8.0], [18.0, 22.0, 21.0]])
# errors f - a:        [[-1, 0, 1], [1, -3, -1]]
# f - origin signs:    [[+, +, -], [-, -, 0]]
# a - origin signs:    [[+, +, -], [-, +, +]]  -> 4 of 6 agree


def test_metrics_match_hand_computed_values():
    m = forecast_metrics(FORECAST, ACTUAL, ORIGIN, mase_scale=0.5)

    assert set(m) == set(METRIC_NAMES)
    assert m["mae"] == pytest.approx(7 / 6)  # (1 + 0 + 1 + 1 + 3 + 1) / 6
    assert m["rmse"] == pytest.approx(np.sqrt(13 / 6))  # (1 + 0 + 1 + 1 + 9 + 1) / 6
    # 200 * |f - a| / (|f| + |a|) per cell: 200/23, 0, 200/17, 200/37, 600/41, 200/41
    assert m["smape"] == pytest.approx((200 / 23 + 200 / 17 + 200 / 37 + 800 / 41) / 6)
    assert m["smape"] == pytest.approx(7.5630, abs=1e-4)
    assert m["mase"] == pytest.approx(7 / 3)  # mae / 0.5
    assert m["directional_accuracy"] == pytest.approx(4 / 6)
    assert all(type(v) is float for v in m.values())


def test_mase_divides_mae_by_the_given_scale():
    for scale in (0.25, 1.0, 7.0):
        m = forecast_metrics(FORECAST, ACTUAL, ORIGIN, mase_scale=scale)
        assert m["mase"] == pytest.approx((7 / 6) / scale)


def test_perfect_forecast_has_zero_errors_and_full_directional_accuracy():
    m = forecast_metrics(ACTUAL, ACTUAL, ORIGIN, mase_scale=1.0)
    assert m == {"mae": 0.0, "rmse": 0.0, "smape": 0.0, "mase": 0.0, "directional_accuracy": 1.0}


def naive_forecast(origin_prices: np.ndarray, horizon: int) -> np.ndarray:
    """The random walk's forecast from a series whose origins hold `origin_prices`."""
    prices = pd.Series(origin_prices)
    naive = NaiveForecaster(horizon).fit(prices)
    return naive.predict(prices, np.arange(len(prices))).prices


def test_naive_forecast_repeats_the_origin_price():
    naive = naive_forecast(ORIGIN, horizon=3)
    np.testing.assert_array_equal(naive, [[10.0, 10.0, 10.0], [20.0, 20.0, 20.0]])


def test_naive_directional_accuracy_counts_only_unmoved_bars():
    actual = ACTUAL.copy()
    actual[1, 2] = 20.0  # the one cell where the price ends where it started
    m = forecast_metrics(naive_forecast(ORIGIN, 3), actual, ORIGIN, mase_scale=1.0)
    assert m["directional_accuracy"] == pytest.approx(1 / 6)
    assert m["mae"] == pytest.approx((2 + 2 + 2 + 2 + 2 + 0) / 6)


@pytest.mark.parametrize(
    ("forecast", "actual", "origin"),
    [
        (FORECAST[:, :2], ACTUAL, ORIGIN),  # horizon mismatch
        (FORECAST, ACTUAL, ORIGIN[:1]),  # origin length mismatch
        (FORECAST[0], ACTUAL[0], ORIGIN[:1]),  # 1-D instead of [n, horizon]
    ],
)
def test_shape_mismatch_raises(forecast, actual, origin):
    with pytest.raises(ValueError, match="expected forecast and actual"):
        forecast_metrics(forecast, actual, origin, mase_scale=1.0)


def test_non_finite_inputs_and_bad_scale_raise():
    bad = FORECAST.copy()
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match="forecast contains NaN or infinite"):
        forecast_metrics(bad, ACTUAL, ORIGIN, mase_scale=1.0)
    with pytest.raises(ValueError, match="mase_scale must be finite and > 0"):
        forecast_metrics(FORECAST, ACTUAL, ORIGIN, mase_scale=0.0)
    with pytest.raises(ValueError, match="window.horizon must be an integer >= 1"):
        naive_forecast(ORIGIN, 0)


def test_mase_scale_is_the_mean_absolute_one_step_change():
    assert mase_scale(np.array([10.0, 12.0, 11.0, 11.0])) == pytest.approx((2 + 1 + 0) / 3)

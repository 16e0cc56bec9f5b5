"""model.calibration=scale: each step's quantiles widened or narrowed around their median by
one factor, fitted on the validation part only, by pinball loss; quantiles that stay in order;
no look-ahead; and the same calibrated quantiles from the in-memory model and its export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import served_frame
from scipy import stats

from forecaster.data.splits import WindowConfig
from forecaster.errors import ConfigError
from forecaster.evaluation.backtest import BacktestConfig, plan_folds, walk_forward
from forecaster.models.base import QUANTILE_LEVELS
from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster
from forecaster.models.seq2seq.outputs import SCALE_GRID, fit_interval_scale, scale_intervals
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.training import TrainConfig

LEVELS = np.array(QUANTILE_LEVELS)
MEDIAN = list(QUANTILE_LEVELS).index(0.5)


def prices_with_volatility(volatilities: list[tuple[int, float]], seed: int) -> pd.Series:
    """A geometric random walk whose daily volatility changes: (bars, volatility) pieces."""
    rng = np.random.default_rng(seed)
    returns = np.concatenate([vol * rng.standard_normal(n) for n, vol in volatilities])
    prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.Series(prices, index=pd.bdate_range("2001-01-01", periods=len(prices)))


def calibrated_model(horizon: int = 3) -> Seq2SeqForecaster:
    return Seq2SeqForecaster(
        window=WindowConfig(lookback=12, horizon=horizon),
        model=Seq2SeqConfig(num_units=6, output="quantiles", calibration="scale"),
        train=TrainConfig(epochs=2, intra_op_threads=1),
        seed=3,
    )


def test_scaling_keeps_the_median_and_the_order_and_scales_the_distances():
    rng = np.random.default_rng(0)
    # Non-decreasing quantiles, some tied, of arbitrary spread: [n, horizon=4, Q]
    quantiles = np.cumsum(
        rng.exponential(1.0, (50, 4, len(LEVELS))) * (rng.random((50, 4, 7)) > 0.2), axis=-1
    )
    scale = [SCALE_GRID[0], 1.0, 2.5, SCALE_GRID[-1]]
    scaled = scale_intervals(quantiles, scale, QUANTILE_LEVELS)
    np.testing.assert_array_equal(scaled[..., MEDIAN], quantiles[..., MEDIAN])
    assert np.all(np.diff(scaled, axis=-1) >= 0)
    distance = quantiles - quantiles[..., [MEDIAN]]
    np.testing.assert_allclose(
        scaled - scaled[..., [MEDIAN]], distance * np.array(scale)[:, None], atol=1e-12
    )
    np.testing.assert_allclose(scaled[:, 1], quantiles[:, 1], atol=1e-12)  # a factor of 1


def test_the_fitted_factor_is_the_one_that_calibrates_each_step():
    """Quantiles of N(0, k) against outcomes drawn from N(0, (s_k)^2 k): the pinball-optimal
    factor at step k is s_k, and it calibrates the 90 % interval."""
    rng = np.random.default_rng(1)
    n, true_scale = 20_000, np.array([0.5, 1.0, 1.6, 3.0])
    steps = np.arange(1, 5)
    quantiles = np.broadcast_to(stats.norm.ppf(LEVELS) * np.sqrt(steps)[:, None], (n, 4, 7))
    realised = rng.standard_normal((n, 4)) * true_scale * np.sqrt(steps)
    scale = fit_interval_scale(quantiles, realised, QUANTILE_LEVELS)
    np.testing.assert_allclose(scale, true_scale, rtol=0.03)
    calibrated = scale_intervals(quantiles, scale, QUANTILE_LEVELS)
    covered = (realised >= calibrated[..., 0]) & (realised <= calibrated[..., -1])
    np.testing.assert_allclose(covered.mean(axis=0), 0.9, atol=0.01)
    # Uncalibrated, the 90 % interval misses the nominal rate wherever s_k is not 1.
    raw = (realised >= quantiles[..., 0]) & (realised <= quantiles[..., -1])
    assert abs(raw.mean(axis=0)[0] - 0.9) > 0.05 and abs(raw.mean(axis=0)[3] - 0.9) > 0.05


def test_with_nothing_to_fit_the_factor_is_one():
    assert np.all(fit_interval_scale(np.zeros((0, 3, 7)), np.zeros((0, 3)), LEVELS) == 1.0)
    only_median = fit_interval_scale(np.zeros((5, 2, 1)), np.ones((5, 2)), [0.5])
    assert np.all(only_median == 1.0)


def test_the_model_calibrates_on_validation_and_forecasts_with_the_factors():
    """Validation twice as volatile as training: the network's intervals (learnt on training)
    are too narrow there, and the fitted factors widen them; predict applies the factors to
    the network's quantiles around an unchanged median."""
    prices = prices_with_volatility([(800, 0.01), (400, 0.02), (100, 0.02)], seed=2)
    with calibrated_model() as model:
        model.fit(prices.iloc[:800], prices.iloc[800:1200])
        scale = model.interval_scale_
        assert scale.shape == (3,) and np.all(scale > 1.3), scale
        origins = np.arange(1200, 1290)
        calibrated = model.predict(prices, origins)
        model.interval_scale_ = None  # the network's own quantiles
        raw = model.predict(prices, origins)
    assert np.all(np.diff(calibrated.quantiles, axis=-1) >= 0)
    np.testing.assert_array_equal(calibrated.prices, raw.prices)  # the median
    log_raw, log_cal = np.log(raw.quantiles), np.log(calibrated.quantiles)
    np.testing.assert_allclose(
        log_cal - log_cal[..., [MEDIAN]],
        (log_raw - log_raw[..., [MEDIAN]]) * scale[:, None],
        rtol=1e-9,
        atol=1e-12,
    )


def test_the_calibration_sees_the_validation_part_and_nothing_after_it():
    """In a backtest each fold calibrates on its own validation bars, before its origins:
    perturbing every price after them leaves the factors and the forecasts bit-identical,
    while a change inside the validation part moves the factors."""
    prices = prices_with_volatility([(900, 0.01), (400, 0.012)], seed=4)
    config = BacktestConfig(models=["seq2seq"], start=f"{prices.index[1100]:%Y-%m-%d}")
    folds = plan_folds(prices, 3, config)
    fit_stop = folds[0].fit_stop

    def walk(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        fitted = []

        def factory() -> Seq2SeqForecaster:
            fitted.append(calibrated_model())
            return fitted[-1]

        result = walk_forward(series, {"seq2seq": factory}, config, 3, folds=folds)
        return fitted[0].interval_scale_.copy(), result.quantiles["seq2seq"][:1]

    scale, first_forecast = walk(prices)
    after = prices.copy()
    after.iloc[fit_stop:] *= np.exp(np.random.default_rng(5).normal(0, 0.05, len(after) - fit_stop))
    scale_after, forecast_after = walk(after)
    np.testing.assert_array_equal(scale_after, scale)
    np.testing.assert_array_equal(forecast_after, first_forecast)  # its window ends at the cut
    inside = prices.copy()
    inside.iloc[fit_stop - 100 : fit_stop] *= np.exp(
        np.random.default_rng(6).normal(0, 0.05, 100)
    )  # a volatile end of the validation part
    scale_inside, _ = walk(inside)
    assert np.all(scale_inside > scale), (scale, scale_inside)


def test_the_exported_model_serves_the_calibrated_quantiles(tmp_path):

    prices = prices_with_volatility([(300, 0.01), (150, 0.02)], seed=5)
    with calibrated_model() as model:
        model.fit(prices.iloc[:300], prices.iloc[300:430])
        assert not np.allclose(model.interval_scale_, 1.0)
        expected = model.predict(prices, np.array([len(prices) - 1]))
        exported = model.export(tmp_path / "model", price_column="Close", date_column="Date")
    frame = served_frame(exported, prices)
    columns = [f"q{level:g}" for level in QUANTILE_LEVELS]
    np.testing.assert_allclose(frame[columns].to_numpy(), expected.quantiles[0], rtol=1e-6)


def test_calibration_is_refused_where_it_cannot_apply():
    from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster

    with pytest.raises(ConfigError, match=r"model\.calibration='iso' is invalid: expected one"):
        Seq2SeqConfig(output="quantiles", calibration="iso")
    point = r"model\.calibration=scale calibrates the intervals of a distributional output, and"
    with pytest.raises(ConfigError, match=point):
        Seq2SeqConfig(calibration="scale")
    prices = prices_with_volatility([(300, 0.01)], seed=6)
    with calibrated_model() as model, pytest.raises(ConfigError, match=r"this fit has none"):
        model.fit(prices)
    with pytest.raises(ConfigError, match=r"the global model over a panel forecasts points"):
        GlobalSeq2SeqForecaster(model=Seq2SeqConfig(output="quantiles", calibration="scale"))

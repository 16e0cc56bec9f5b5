"""The seq2seq's distributional outputs (`model.output` = quantiles, student_t): quantiles that
never cross whatever the weights, exact price-space quantiles (against a Monte Carlo
reference), calibrated intervals on data drawn from a known distribution, and an exported model
that serves the very quantiles the in-memory model forecasts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import served_frame
from scipy import stats

from forecaster.data.splits import WindowConfig
from forecaster.data.windows import Scaler
from forecaster.errors import ConfigError
from forecaster.models.base import QUANTILE_LEVELS
from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster
from forecaster.models.seq2seq.network import Seq2SeqModel
from forecaster.models.seq2seq.outputs import cumulative_quantiles, quantiles_to_prices
from forecaster.models.seq2seq.spec import ModelSpec, Seq2SeqConfig
from forecaster.training import TrainConfig

OUTPUTS = ("quantiles", "student_t")


def gbm(n: int, daily_volatility: float, seed: int, drift: float = 0.0) -> pd.Series:
    """Geometric Brownian motion: iid normal daily log returns of a known volatility."""
    rng = np.random.default_rng(seed)
    returns = drift + daily_volatility * rng.standard_normal(n - 1)
    prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.Series(prices, index=pd.bdate_range("2000-01-03", periods=n))


@pytest.mark.parametrize("output", OUTPUTS)
def test_quantiles_never_cross_whatever_the_weights(output):
    spec = ModelSpec(horizon=6, num_units=8, num_layers=2, output=output, quantiles=QUANTILE_LEVELS)
    rng = np.random.default_rng(0)
    inputs = rng.normal(0, 3, (64, 15, 1)).astype(np.float32)
    with Seq2SeqModel(spec, seed=1, intra_op_threads=1) as network:
        for draw in range(5):  # wild weights: large, of either sign
            weights = network.get_weights()
            network.set_weights(
                {
                    name: rng.normal(0, 4, value.shape).astype(np.float32)
                    for name, value in weights.items()
                }
            )
            distribution = network.forecast(inputs).distribution
            quantiles = cumulative_quantiles(output, distribution, QUANTILE_LEVELS)
            assert quantiles.shape == (64, 6, len(QUANTILE_LEVELS))
            assert np.all(np.isfinite(quantiles)), draw
            assert np.all(np.diff(quantiles, axis=-1) >= 0), draw


def test_price_quantiles_match_a_monte_carlo_of_the_cumulative_return():
    """Quantiles of S_k mapped through p_t * exp(std * S_k + k * mean) equal the quantiles of
    simulated prices (the map is increasing, so this is exact up to Monte Carlo error)."""
    rng = np.random.default_rng(7)
    scaler = Scaler(mean=0.0004, std=0.012)
    horizon, levels = 4, QUANTILE_LEVELS
    sqrt_k = np.sqrt(np.arange(1, horizon + 1))
    # One origin, a Student-t per step in S_k units (loc, scale, df), as the graph outputs it.
    distribution = np.stack([0.1 * sqrt_k, 1.2 * sqrt_k, np.array([3.0, 4.0, 6.0, 10.0])], axis=-1)[
        np.newaxis
    ]
    origin = np.array([250.0])
    exact = quantiles_to_prices(
        cumulative_quantiles("student_t", distribution, levels), origin, scaler
    )
    draws = 400_000
    loc, scale, df = distribution[0, :, 0], distribution[0, :, 1], distribution[0, :, 2]
    s = loc + scale * rng.standard_t(df, size=(draws, horizon))
    prices = origin[0] * np.exp(scaler.std * s + scaler.mean * np.arange(1, horizon + 1))
    # The share of simulated prices at or below each exact quantile is its level, within
    # four binomial standard errors.
    below = np.mean(prices[:, :, np.newaxis] <= exact[0], axis=0)  # [horizon, Q]
    tau = np.asarray(levels)
    assert np.all(np.abs(below - tau) < 4 * np.sqrt(tau * (1 - tau) / draws)), below
    # And the median is the point: loc exactly.
    np.testing.assert_array_equal(
        exact[0, :, levels.index(0.5)],
        origin[0] * np.exp(scaler.std * loc + scaler.mean * np.arange(1, horizon + 1)),
    )


def test_student_t_quantiles_are_scipys():
    distribution = np.array([[[0.5, 2.0, 3.5]]])
    got = cumulative_quantiles("student_t", distribution, (0.05, 0.5, 0.95))
    np.testing.assert_allclose(got[0, 0], stats.t.ppf([0.05, 0.5, 0.95], 3.5, loc=0.5, scale=2.0))


@pytest.mark.slow
@pytest.mark.parametrize("output", OUTPUTS)
def test_a_model_trained_on_a_known_distribution_covers_at_the_nominal_rates(output):
    """On a random walk with iid normal returns the true 80 % and 90 % intervals are known; a
    model trained on it must cover near those rates out of sample."""
    prices = gbm(2400, daily_volatility=0.01, seed=3)
    train, val, test = prices.iloc[:1600], prices.iloc[1600:1900], prices.iloc[1900:]
    model = Seq2SeqForecaster(
        window=WindowConfig(lookback=20, horizon=5, stride=1),
        model=Seq2SeqConfig(num_units=16, output=output),
        train=TrainConfig(epochs=15, batch_size=64, patience=3, intra_op_threads=1),
        seed=0,
    )
    with model:
        model.fit(train, val)
        origins = np.arange(1900, len(prices) - 5)
        forecast = model.predict(prices, origins)
    del test
    actual = prices.to_numpy()[origins[:, None] + np.arange(1, 6)]
    q = forecast.quantiles
    for low, high, nominal in ((1, 5, 0.8), (0, 6, 0.9)):
        covered = np.mean((actual >= q[..., low]) & (actual <= q[..., high]))
        assert abs(covered - nominal) < 0.06, (output, nominal, covered)
    # The true 90 % interval of the 5-step price: its width relative to the price.
    true_width = np.exp(1.645 * 0.01 * np.sqrt(5)) - np.exp(-1.645 * 0.01 * np.sqrt(5))
    width = np.mean((q[:, -1, 6] - q[:, -1, 0]) / prices.to_numpy()[origins])
    assert width == pytest.approx(true_width, rel=0.15)


@pytest.mark.parametrize("output", OUTPUTS)
def test_the_exported_model_serves_the_in_memory_models_quantiles(output, tmp_path):

    prices = gbm(400, daily_volatility=0.01, seed=5)
    with Seq2SeqForecaster(
        window=WindowConfig(lookback=12, horizon=3),
        model=Seq2SeqConfig(num_units=6, output=output, quantiles=[0.1, 0.5, 0.9]),
        train=TrainConfig(epochs=2, intra_op_threads=1),
    ) as model:
        model.fit(prices.iloc[:300])
        expected = model.predict(prices, np.array([len(prices) - 1]))
        exported = model.export(tmp_path / "model", price_column="Close", date_column="Date")
    frame = served_frame(exported, prices)
    assert list(frame.columns) == ["step", "date", "forecast", "q0.1", "q0.5", "q0.9"]
    np.testing.assert_allclose(
        frame[["q0.1", "q0.5", "q0.9"]].to_numpy(), expected.quantiles[0], rtol=1e-6
    )
    np.testing.assert_allclose(frame["forecast"], expected.prices[0], rtol=1e-6)


def test_a_carried_state_is_one_pass_over_the_whole_history_up_to_the_origin():
    """model.state=carry: each origin's forecast starts from the state after every bar up to it,
    the same as encoding the whole history in one pass from zeros, whatever the batch."""
    from forecaster.data.windows import target_series

    prices = gbm(700, daily_volatility=0.01, seed=8)
    with Seq2SeqForecaster(
        window=WindowConfig(lookback=12, horizon=3),
        model=Seq2SeqConfig(num_units=6, output="quantiles", state="carry"),
        train=TrainConfig(epochs=1, intra_op_threads=1),
    ) as model:
        model.fit(prices.iloc[:500])
        origins = np.array([650, 520, 699, 520])
        carried = model.predict(prices, origins)
        y = model.scaler_.transform(target_series(prices, "log_return").to_numpy())
        for row, origin in enumerate(origins):
            alone = model.predict(prices, np.array([origin]))
            np.testing.assert_array_equal(alone.quantiles[0], carried.quantiles[row])
            one_pass = model.network_.forecast(y[np.newaxis, :origin, np.newaxis].astype("float32"))
            reference = quantiles_to_prices(
                cumulative_quantiles("quantiles", one_pass.distribution, QUANTILE_LEVELS),
                prices.to_numpy()[[origin]],
                model.scaler_,
            )
            np.testing.assert_allclose(carried.quantiles[row], reference[0], rtol=1e-5)
        model.model.state = "window"  # the same network, each origin's window from zeros
        windowed = model.predict(prices, origins)
    assert not np.allclose(windowed.quantiles, carried.quantiles, rtol=1e-6)


def test_a_distributional_output_needs_log_returns_and_a_known_name():
    needs = r"model\.output='quantiles' .* needs data\.target=log_return, not 'price'"
    with pytest.raises(ConfigError, match=needs):
        Seq2SeqForecaster(model=Seq2SeqConfig(output="quantiles"), target="price")
    with pytest.raises(ConfigError, match=r"model\.output='gaussian' is invalid: expected one of"):
        Seq2SeqConfig(output="gaussian")
    with pytest.raises(ConfigError, match=r"model\.state='stream' is invalid: expected one of"):
        Seq2SeqConfig(state="stream")

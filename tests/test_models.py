"""One conformance test for every registered forecaster, deep or baseline.

In the spirit of neuralforecast's `check_model`: each model in `forecaster.models.REGISTRY` is
fitted on a small generated series and put through the same checks (shapes, no look-ahead,
determinism for a seed, clear errors for bad input). A model added to the registry without a
tiny configuration here fails `test_every_registered_model_is_checked`. Models that forecast
quantiles go through the same checks for their intervals too (shapes, levels, no crossing, the
median as the point forecast, no look-ahead, determinism).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from forecaster.data.splits import WindowConfig
from forecaster.data.synthetic import generate_prices
from forecaster.errors import ConfigError, DataError, NotFittedError
from forecaster.models import PROBABILISTIC_BASELINES, REGISTRY, Forecast, create
from forecaster.models.base import QUANTILE_LEVELS
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.training import TrainConfig

HORIZON = 4


def tiny_seq2seq(
    horizon: int = HORIZON,
    seed: int = 0,
    output: str = "point",
    quantiles=QUANTILE_LEVELS,
    state: str = "window",
    carry: bool = False,
):
    return create(
        "seq2seq",
        window=WindowConfig(lookback=10, horizon=horizon),
        model=Seq2SeqConfig(
            num_units=4,
            num_layers=2,
            dropout=0.1,
            output=output,
            quantiles=quantiles,
            state=state,
        ),
        train=TrainConfig(
            epochs=2, batch_size=64, intra_op_threads=1, carry=carry, chunk_length=10
        ),
        seed=seed,
    )


def seq2seq_with(**settings) -> Callable:
    return lambda **params: tiny_seq2seq(**settings, **params)


def baseline(name: str, **params) -> Callable:
    return lambda horizon=HORIZON, seed=0, **more: create(name, horizon=horizon, **params, **more)


# name -> factory(horizon, seed): the smallest configuration of each model.
TINY: dict[str, Callable] = {
    "naive": baseline("naive"),
    "drift": baseline("drift"),
    "mean_return": baseline("mean_return"),
    "ridge": baseline("ridge", lookback=10),
    "auto_ets": baseline("auto_ets"),
    "auto_arima": baseline("auto_arima"),
    "rw_normal": baseline("rw_normal", lookback=10),
    "empirical_quantiles": baseline("empirical_quantiles"),
    "garch_t": lambda horizon=HORIZON, seed=0, **more: create(
        "garch_t", horizon=horizon, seed=seed, simulations=500, **more
    ),
    "seq2seq": tiny_seq2seq,
    # The seq2seq's distributional outputs (model.output), each checked as a model of its own.
    "seq2seq/quantiles": seq2seq_with(output="quantiles"),
    "seq2seq/student_t": seq2seq_with(output="student_t"),
    # The encoder state carried over the whole series (model.state=carry).
    "seq2seq/carry": seq2seq_with(output="quantiles", state="carry"),
    # ... and trained that way too (train.carry=true: truncated backprop through time).
    "seq2seq/carry_trained": seq2seq_with(output="quantiles", state="carry", carry=True),
}
# The models whose tiny configuration forecasts quantiles.
PROBABILISTIC = sorted(
    [
        *PROBABILISTIC_BASELINES,
        "seq2seq/quantiles",
        "seq2seq/student_t",
        "seq2seq/carry",
        "seq2seq/carry_trained",
    ]
)


@pytest.fixture(scope="module")
def prices() -> pd.Series:
    frame = generate_prices(n_days=320, seed=11)
    return frame.set_index("Date")["Adj Close"]


def fitted(name: str, prices: pd.Series, seed: int = 0):
    return TINY[name](seed=seed).fit(prices.iloc[:220], prices.iloc[220:270])


@pytest.fixture(scope="module", params=sorted(TINY))
def model(request, prices):
    model = fitted(request.param, prices)
    yield model
    getattr(model, "close", lambda: None)()


def test_every_registered_model_is_checked():
    assert {name.split("/")[0] for name in TINY} == set(REGISTRY)


def test_exactly_the_probabilistic_models_forecast_quantiles(model, prices, request):
    forecast = model.predict(prices, np.arange(270, 280))
    name = request.node.callspec.params["model"]
    assert forecast.is_probabilistic == (name in PROBABILISTIC)
    if not forecast.is_probabilistic:
        assert forecast.quantiles is None and forecast.quantile_levels is None


def test_forecasts_have_one_row_of_horizon_prices_per_origin(model, prices):
    origins = np.arange(269, len(prices) - HORIZON)
    forecast = model.predict(prices, origins)
    assert isinstance(forecast, Forecast)
    np.testing.assert_array_equal(forecast.origins, origins)
    assert forecast.prices.shape == (len(origins), HORIZON)
    assert np.all(np.isfinite(forecast.prices)) and np.all(forecast.prices > 0)
    if forecast.encoder_state is not None:  # recurrent models: one state row per origin
        for state in (*forecast.encoder_state, *forecast.decoder_state):
            assert state.c.shape[0] == state.h.shape[0] == len(origins)


def test_a_forecast_never_reads_prices_after_its_origin(model, prices):
    origins = np.array([model.min_history - 1, 150, 230, 280, len(prices) - 1])
    before = model.predict(prices, origins)
    rng = np.random.default_rng(3)
    for row, origin in enumerate(origins):
        garbage = prices.copy()
        after = garbage.iloc[origin + 1 :]
        garbage.iloc[origin + 1 :] = rng.permutation(after.to_numpy(copy=True)) * rng.uniform(
            0.2, 5.0, len(after)
        )
        # Same batch, so the same arithmetic; rows after `row` may see the garbage, row `row`
        # must not.
        forecast = model.predict(garbage, origins)
        np.testing.assert_array_equal(forecast.prices[row], before.prices[row])
        if before.is_probabilistic:  # the interval may not look ahead either
            np.testing.assert_array_equal(forecast.quantiles[row], before.quantiles[row])


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_same_seed_gives_the_same_forecast(name, prices):
    origins = np.arange(270, 300)
    first = fitted(name, prices, seed=5).predict(prices, origins)
    second = fitted(name, prices, seed=5).predict(prices, origins)
    np.testing.assert_array_equal(first.prices, second.prices)
    if first.is_probabilistic:
        np.testing.assert_array_equal(first.quantiles, second.quantiles)


@pytest.mark.parametrize("name", sorted(TINY))
def test_forecasting_before_fitting_says_to_fit(name, prices):
    with pytest.raises(NotFittedError, match=r"not fitted yet: call fit\(train, val\)"):
        TINY[name]().predict(prices, np.array([100]))


def test_an_origin_without_enough_history_or_outside_the_series_is_refused(model, prices):
    first = model.min_history - 1
    model.predict(prices, np.array([first]))
    for bad in (first - 1, len(prices)):
        if bad < 0:
            continue
        with pytest.raises(DataError, match=rf"cannot forecast from position {bad} of a 320-bar"):
            model.predict(prices, np.array([bad]))
    with pytest.raises(DataError, match="origins must be a 1-D array of integer positions"):
        model.predict(prices, np.array([100.0]))


@pytest.mark.parametrize("name", sorted(TINY))
def test_fitting_on_bad_prices_is_refused(name, prices):
    model = TINY[name]()
    too_short = prices.iloc[: model.min_history - 1]  # not even one origin's history
    with pytest.raises(DataError, match=rf"the training series has {len(too_short)} bars"):
        model.fit(too_short)
    broken = prices.iloc[:220].copy()
    broken.iloc[100] = -1.0
    with pytest.raises(DataError, match="must hold finite prices > 0"):
        TINY[name]().fit(broken)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_horizon_below_one_names_the_config_key(name):
    with pytest.raises(ConfigError, match=r"window\.horizon"):
        TINY[name](horizon=0)


# -- probabilistic forecasts ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_quantiles_are_prices_at_every_step_non_crossing_with_the_median_as_the_forecast(
    name, prices
):
    model = fitted(name, prices)
    origins = np.arange(model.min_history - 1, len(prices), 7)
    forecast = model.predict(prices, origins)
    assert forecast.quantile_levels == QUANTILE_LEVELS  # the default levels
    assert forecast.quantiles.shape == (len(origins), HORIZON, len(QUANTILE_LEVELS))
    assert np.all(np.isfinite(forecast.quantiles)) and np.all(forecast.quantiles > 0)
    assert np.all(np.diff(forecast.quantiles, axis=-1) >= 0)  # no crossing
    assert np.all(forecast.quantiles[..., 0] < forecast.quantiles[..., -1])  # a real interval
    np.testing.assert_array_equal(forecast.prices, forecast.quantiles[..., 3])  # the median
    # The interval brackets the origin's price at the first step (daily moves are small).
    origin_prices = prices.to_numpy()[origins]
    assert np.all(forecast.quantiles[:, 0, 0] < origin_prices)
    assert np.all(forecast.quantiles[:, 0, -1] > origin_prices)


@pytest.mark.parametrize("name", PROBABILISTIC)
def test_a_model_forecasts_the_levels_it_is_given(name, prices):
    levels = (0.01, 0.2, 0.5, 0.8, 0.99)
    model = TINY[name](quantiles=levels).fit(prices.iloc[:220], prices.iloc[220:270])
    forecast = model.predict(prices, np.array([280, 300]))
    assert forecast.quantile_levels == levels
    assert forecast.quantiles.shape == (2, HORIZON, 5)
    np.testing.assert_array_equal(forecast.quantiles_at([0.2, 0.8]), forecast.quantiles[..., 1:4:2])


@pytest.mark.parametrize("name", PROBABILISTIC)
@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ((0.1, 0.9), r"model\.quantiles=\[0\.1, 0\.9\] lacks 0\.5"),
        ((0.5, 0.1), r"model\.quantiles=\[0\.5, 0\.1\] is invalid: expected increasing"),
        ((0.0, 0.5), r"model\.quantiles=\[0\.0, 0\.5\] is invalid"),
        ("median", r"model\.quantiles='median' must be a list of numbers"),
    ],
)
def test_bad_quantile_levels_name_the_config_key(name, levels, message):
    with pytest.raises(ConfigError, match=message):
        TINY[name](quantiles=levels)


def forecast_of(quantiles: np.ndarray, levels=(0.1, 0.5, 0.9)) -> Forecast:
    return Forecast.from_quantiles(np.arange(len(quantiles)), levels, quantiles)


def test_a_forecast_refuses_crossing_misshapen_or_inconsistent_quantiles():
    good = np.array([[[9.0, 10.0, 11.0], [8.0, 10.0, 12.0]]])
    forecast = forecast_of(good)
    np.testing.assert_array_equal(forecast.prices, [[10.0, 10.0]])
    crossed = good.copy()
    crossed[0, 1, 2] = 7.0
    with pytest.raises(ValueError, match=r"quantiles cross: at row 0, step 2, the 0.9 quantile 7"):
        forecast_of(crossed)
    with pytest.raises(ValueError, match=r"quantiles must have shape \[n, horizon, 3\]"):
        Forecast(
            np.arange(1), good[..., 1], quantile_levels=(0.1, 0.5, 0.9), quantiles=good[..., :2]
        )
    with pytest.raises(ValueError, match="prices must be its median"):
        Forecast(np.arange(1), good[..., 0], quantile_levels=(0.1, 0.5, 0.9), quantiles=good)
    with pytest.raises(ValueError, match="finite prices > 0"):
        forecast_of(good - 10.0)
    with pytest.raises(ValueError, match="both quantile_levels and quantiles, or neither"):
        Forecast(np.arange(1), good[..., 1], quantiles=good)
    with pytest.raises(ValueError, match=r"no quantile at level\(s\) \[0\.05\]"):
        forecast.quantiles_at([0.05, 0.5])

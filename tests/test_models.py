"""One conformance test for every registered forecaster, deep or baseline.

In the spirit of neuralforecast's `check_model`: each model in `forecaster.models.REGISTRY` is
fitted on a small generated series and put through the same checks (shapes, no look-ahead,
determinism for a seed, clear errors for bad input). A model added to the registry without a
tiny configuration here fails `test_every_registered_model_is_checked`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from forecaster.data.splits import WindowConfig
from forecaster.data.synthetic import generate_prices
from forecaster.errors import ConfigError, DataError, NotFittedError
from forecaster.models import REGISTRY, Forecast, create
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.training import TrainConfig

HORIZON = 4


def tiny_seq2seq(horizon: int = HORIZON, seed: int = 0):
    return create(
        "seq2seq",
        window=WindowConfig(lookback=10, horizon=horizon),
        model=Seq2SeqConfig(num_units=4, num_layers=2, dropout=0.1),
        train=TrainConfig(epochs=2, batch_size=64, intra_op_threads=1),
        seed=seed,
    )


def baseline(name: str, **params) -> Callable:
    return lambda horizon=HORIZON, seed=0: create(name, horizon=horizon, **params)


# name -> factory(horizon, seed): the smallest configuration of each model.
TINY: dict[str, Callable] = {
    "naive": baseline("naive"),
    "drift": baseline("drift"),
    "mean_return": baseline("mean_return"),
    "ridge": baseline("ridge", lookback=10),
    "auto_ets": baseline("auto_ets"),
    "auto_arima": baseline("auto_arima"),
    "seq2seq": tiny_seq2seq,
}


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
    assert set(TINY) == set(REGISTRY)


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


@pytest.mark.parametrize("name", sorted(TINY))
def test_the_same_seed_gives_the_same_forecast(name, prices):
    origins = np.arange(270, 300)
    first = fitted(name, prices, seed=5)
    second = fitted(name, prices, seed=5)
    np.testing.assert_array_equal(
        first.predict(prices, origins).prices, second.predict(prices, origins).prices
    )


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

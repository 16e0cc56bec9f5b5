"""What each baseline forecasts, checked by hand or against its library's own forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.models.baselines import (
    DriftForecaster,
    MeanReturnForecaster,
    NaiveForecaster,
    RidgeForecaster,
)

PRICES = pd.Series(
    [100.0, 102.0, 101.0, 104.0, 106.0], index=pd.bdate_range("2024-01-01", periods=5)
)


def test_naive_repeats_the_origin_price():
    forecast = NaiveForecaster(horizon=2).fit(PRICES).predict(PRICES, np.array([0, 3]))
    np.testing.assert_array_equal(forecast.prices, [[100.0, 100.0], [104.0, 104.0]])


def test_drift_extends_the_line_from_the_first_price_to_the_origin():
    forecast = DriftForecaster(horizon=3).fit(PRICES).predict(PRICES, np.array([2, 4]))
    # origin 2: slope (101 - 100) / 2 = 0.5; origin 4: slope (106 - 100) / 4 = 1.5
    np.testing.assert_allclose(forecast.prices, [[101.5, 102.0, 102.5], [107.5, 109.0, 110.5]])


def test_mean_return_compounds_the_training_parts_mean_log_return():
    model = MeanReturnForecaster(horizon=2).fit(PRICES.iloc[:3])  # returns log(1.02), log(101/102)
    mu = np.log(101.0 / 100.0) / 2
    assert model.mean_return_ == pytest.approx(mu)
    forecast = model.predict(PRICES, np.array([4]))  # the model keeps its training-part mean
    np.testing.assert_allclose(forecast.prices, [[106 * np.exp(mu), 106 * np.exp(2 * mu)]])


def ar1_prices(n: int, phi: float, seed: int = 0) -> pd.Series:
    """Prices whose log returns follow r_t = phi * r_{t-1} + noise: predictable, a little."""
    rng = np.random.default_rng(seed)
    returns = np.zeros(n)
    for t in range(1, n):
        returns[t] = phi * returns[t - 1] + rng.normal(0, 0.01)
    return pd.Series(
        100 * np.exp(np.cumsum(returns)), index=pd.bdate_range("2000-01-03", periods=n)
    )


def test_ridge_learns_a_predictable_return_and_picks_its_penalty_from_the_grid():
    prices = ar1_prices(3000, phi=0.6)
    model = RidgeForecaster(horizon=2, lookback=5).fit(prices.iloc[:2500])
    assert model.alpha_ in model.alphas
    origins = np.arange(2500, 2990)
    forecast = model.predict(prices, origins)
    r = np.log(prices.to_numpy()[1:] / prices.to_numpy()[:-1])
    last = r[origins - 1]  # the return into each origin bar
    predicted_first = np.log(forecast.prices[:, 0] / prices.to_numpy()[origins])
    # The one-step forecast is about phi times the last return: the fitted slope is near 0.6.
    slope = np.polyfit(last, predicted_first, 1)[0]
    assert slope == pytest.approx(0.6, abs=0.08)
    # And it forecasts better than the random walk on data it never saw.
    actual = prices.to_numpy()[origins + 1]
    naive_mae = np.mean(np.abs(prices.to_numpy()[origins] - actual))
    assert np.mean(np.abs(forecast.prices[:, 0] - actual)) < 0.9 * naive_mae


def test_ridge_on_a_random_walk_shrinks_to_the_mean():
    prices = ar1_prices(3000, phi=0.0, seed=2)
    model = RidgeForecaster(horizon=3, lookback=20).fit(prices.iloc[:2500])
    assert model.alpha_ >= 100  # cross-validation finds nothing to fit and penalises hard
    forecast = model.predict(prices, np.arange(2500, 2990))
    moves = np.log(forecast.prices[:, -1] / prices.to_numpy()[2500:2990])
    assert np.abs(moves).max() < 0.01  # under 1 % over 3 days: next to no signal


@pytest.mark.parametrize("name", ["auto_ets", "auto_arima"])
def test_statistical_baselines_forecast_what_statsforecast_forecasts(name):
    from statsforecast.models import AutoARIMA, AutoETS

    from forecaster.models.statistical import AutoARIMAForecaster, AutoETSForecaster

    ours, theirs = {
        "auto_ets": (AutoETSForecaster, AutoETS),
        "auto_arima": (AutoARIMAForecaster, AutoARIMA),
    }[name]
    prices = ar1_prices(600, phi=0.3, seed=4)
    train = prices.iloc[:500]
    model = ours(horizon=4).fit(train)
    # At the end of the training series the filtered state is the fitted one: the forecast is
    # the library's own forecast from its fit, back in prices.
    expected = np.exp(theirs(season_length=1).fit(np.log(train.to_numpy())).predict(h=4)["mean"])
    forecast = model.predict(prices, np.array([499]))
    np.testing.assert_allclose(forecast.prices[0], expected, rtol=1e-9)

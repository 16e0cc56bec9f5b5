"""What each probabilistic baseline forecasts: checked by hand, against arch's own GARCH
forecast, for no look-ahead, and for coverage near nominal on data from a known process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from arch.univariate import GARCH, ConstantMean, StudentsT
from scipy.stats import norm

from forecaster.evaluation.probabilistic import score_quantiles, scoring_levels
from forecaster.models.base import QUANTILE_LEVELS
from forecaster.models.garch import PERCENT, GarchTForecaster
from forecaster.models.probabilistic import EmpiricalQuantileForecaster, RandomWalkNormalForecaster

PRICES = pd.Series(
    [100.0, 102.0, 101.0, 104.0, 106.0, 105.0],
    index=pd.bdate_range("2024-01-01", periods=6),
)
LEVELS = (0.1, 0.5, 0.9)


def index(values: np.ndarray) -> pd.Series:
    return pd.Series(values, index=pd.bdate_range("2000-01-03", periods=len(values)))


def random_walk(n: int, sigma: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    return index(100 * np.exp(np.cumsum(rng.normal(0, sigma, n))))


def garch_prices(n: int, seed: int) -> tuple[pd.Series, np.ndarray]:
    """Prices whose log returns (in percent) follow a known GARCH(1,1)-t."""
    params = np.array([0.03, 0.02, 0.08, 0.9, 6.0])  # mu, omega, alpha, beta, nu
    model = ConstantMean(None, volatility=GARCH(1, 0, 1), distribution=StudentsT(seed=seed))
    returns = model.simulate(params, n, burn=500)["data"].to_numpy() / PERCENT
    return index(100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))), params


def coverage(model, prices: pd.Series, origins: np.ndarray) -> dict[str, float]:
    forecast = model.predict(prices, origins)
    p = prices.to_numpy()
    actual = p[origins[:, None] + np.arange(1, model.horizon + 1)]
    return score_quantiles(
        forecast.quantiles, forecast.quantile_levels, actual, p[origins], QUANTILE_LEVELS
    ).summary()


# -- the random walk with the window's volatility ------------------------------------------------


def test_rw_normal_scales_the_windows_volatility_by_the_root_of_the_step():
    model = RandomWalkNormalForecaster(horizon=2, lookback=3, quantiles=LEVELS).fit(PRICES)
    forecast = model.predict(PRICES, np.array([3, 5]))
    r = np.log(PRICES.to_numpy()[1:] / PRICES.to_numpy()[:-1])
    for row, origin in enumerate([3, 5]):
        s = np.std(r[origin - 3 : origin], ddof=1)  # the 3 returns into the origin's bar
        p = PRICES.iloc[origin]
        for step in (1, 2):
            expected = p * np.exp(s * np.sqrt(step) * norm.ppf(LEVELS))
            np.testing.assert_allclose(forecast.quantiles[row, step - 1], expected, rtol=1e-12)
        np.testing.assert_array_equal(forecast.prices[row], [p, p])  # the naive forecast


def test_rw_normal_covers_a_constant_volatility_random_walk_at_the_nominal_rate():
    prices = random_walk(6000, 0.01, seed=0)
    model = RandomWalkNormalForecaster(horizon=5, quantiles=scoring_levels(QUANTILE_LEVELS))
    scores = coverage(model.fit(prices.iloc[:1000]), prices, np.arange(1000, 5990, 5))
    assert scores["coverage_90"] == pytest.approx(0.9, abs=0.025)
    assert scores["coverage_80"] == pytest.approx(0.8, abs=0.03)


# -- empirical quantiles -------------------------------------------------------------------------


def test_empirical_quantiles_are_those_of_the_training_parts_h_step_returns():
    train = PRICES.iloc[:5]
    model = EmpiricalQuantileForecaster(horizon=2, quantiles=LEVELS)
    model.min_samples = 1  # five bars are enough to check the arithmetic
    model.fit(train, val=PRICES.iloc[5:])  # the validation part is not fitted on
    lp = np.log(train.to_numpy())
    one, two = lp[1:] - lp[:-1], lp[2:] - lp[:-2]
    np.testing.assert_allclose(model.return_quantiles_[0], np.quantile(one, LEVELS))
    np.testing.assert_allclose(model.return_quantiles_[1], np.quantile(two, LEVELS))
    forecast = model.predict(PRICES, np.array([5]))
    np.testing.assert_allclose(forecast.quantiles[0], 105.0 * np.exp(model.return_quantiles_))


def test_empirical_quantiles_need_returns_to_take_quantiles_of():
    with pytest.raises(
        Exception, match=r"the training series has 10 bars; this model needs at least 25"
    ):
        EmpiricalQuantileForecaster(horizon=5).fit(random_walk(10, 0.01, 0))


# -- GARCH(1,1)-t --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def garch():
    prices, _ = garch_prices(3000, seed=1)
    model = GarchTForecaster(horizon=5, simulations=20_000, seed=3).fit(prices.iloc[:2000])
    return model, prices


def test_garch_parameters_are_archs_maximum_likelihood_fit_on_the_training_part(garch):
    model, prices = garch
    returns = PERCENT * np.diff(np.log(prices.iloc[:2000].to_numpy()))
    reference = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t")
    # the same optimum, to the optimiser's tolerance
    np.testing.assert_allclose(model.params_, reference.fit(disp="off").params, rtol=1e-5)


def test_garch_first_step_quantiles_are_archs_analytic_student_t_forecast(garch):
    """One step ahead the return is exactly mu + sigma_{t+1} z with z standardised Student-t:
    arch's analytic forecast gives mu and sigma^2 after filtering through the origin; the
    simulated quantiles must agree within Monte Carlo error."""
    model, prices = garch
    p = prices.to_numpy()
    returns = PERCENT * np.diff(np.log(p))
    origins = np.array([1500, 2400, 2990])
    forecast = model.predict(prices, origins)
    levels = np.asarray(forecast.quantile_levels)
    for row, origin in enumerate(origins):
        reference = arch_model(returns[:origin], mean="Constant", vol="GARCH", p=1, q=1, dist="t")
        analytic = reference.forecast(model.params_, horizon=5, start=origin - 1)
        mean, variance = analytic.mean.to_numpy()[-1], analytic.variance.to_numpy()[-1]
        z = reference.distribution.ppf(levels, model.params_[-1:])
        expected = mean[0] + np.sqrt(variance[0]) * z
        ours = PERCENT * np.log(forecast.quantiles[row, 0] / p[origin])
        np.testing.assert_allclose(ours, expected, atol=0.05 * np.sqrt(variance[0]))
        # Further out: the simulated h-step sums have arch's analytic mean and variance.
        paths = np.cumsum(model.simulate(returns[:origin], origin), axis=1)
        error = np.sqrt(np.cumsum(variance) / model.simulations)  # of the mean
        assert np.all(np.abs(paths.mean(axis=0) - np.cumsum(mean)) < 4 * error)
        np.testing.assert_allclose(paths.var(axis=0), np.cumsum(variance), rtol=0.06)
        # and the forecast is exactly the quantiles of those paths, as prices
        np.testing.assert_allclose(
            forecast.quantiles[row], p[origin] * np.exp(np.quantile(paths, levels, axis=0).T / 100)
        )


def test_garch_in_sample_filter_is_archs_conditional_volatility(garch):
    """Filtering the training series with the fitted parameters is what arch's own fit did:
    the one-step variance at every bar is its conditional variance."""
    model, prices = garch
    returns = PERCENT * np.diff(np.log(prices.iloc[:2000].to_numpy()))
    fitted = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
    for t in (200, 1000, 1998):
        reference = arch_model(returns[:t], mean="Constant", vol="GARCH", p=1, q=1, dist="t")
        variance = reference.forecast(model.params_, horizon=1, start=t - 1).variance
        assert variance.to_numpy()[-1, 0] == pytest.approx(fitted.conditional_volatility[t] ** 2)


def test_garch_intervals_never_depend_on_prices_after_the_origin(garch):
    model, prices = garch
    origin = 2500
    before = model.predict(prices, np.array([origin]))
    rng = np.random.default_rng(0)
    garbage = prices.copy()
    garbage.iloc[origin + 1 :] *= rng.uniform(0.2, 5.0, len(prices) - origin - 1)
    after = model.predict(garbage, np.array([origin]))
    np.testing.assert_array_equal(after.quantiles, before.quantiles)
    # ... while a price before the origin moves them: the test can see a dependence.
    earlier = prices.copy()
    earlier.iloc[origin - 3] *= 1.05
    moved = model.predict(earlier, np.array([origin]))
    assert not np.array_equal(moved.quantiles, before.quantiles)


def test_garch_intervals_widen_after_a_shock(garch):
    model, prices = garch
    origin = 2500
    calm = model.predict(prices, np.array([origin]))
    shocked = prices.copy()
    shocked.iloc[origin - 1 :] *= 0.93  # a 7 % fall the day before the origin
    after = model.predict(shocked, np.array([origin]))
    width = (calm.quantiles[0, :, -1] - calm.quantiles[0, :, 0]) / prices.iloc[origin]
    shocked_width = (after.quantiles[0, :, -1] - after.quantiles[0, :, 0]) / shocked.iloc[origin]
    assert np.all(shocked_width > 1.5 * width)


def test_garch_covers_a_garch_process_at_the_nominal_rate():
    prices, _ = garch_prices(4000, seed=2)
    model = GarchTForecaster(horizon=5, quantiles=scoring_levels(QUANTILE_LEVELS), seed=0)
    model.simulations = 4000
    scores = coverage(model.fit(prices.iloc[:2000]), prices, np.arange(2000, 3990, 5))
    assert scores["coverage_90"] == pytest.approx(0.9, abs=0.035)
    assert scores["coverage_80"] == pytest.approx(0.8, abs=0.045)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(simulations=0), r"simulations must be an integer >= 1"),
        (dict(seed=-1), r"seed must be an integer >= 0"),
        (dict(horizon=0), r"window\.horizon must be an integer >= 1"),
    ],
)
def test_bad_garch_settings_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GarchTForecaster(**kwargs)

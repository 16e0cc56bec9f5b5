"""Specification of forecaster.evaluation.probabilistic: one origin, two steps, five levels,
small enough to compute by hand; then each score against an independent implementation."""

import numpy as np
import properscoring
import pytest
from scipy.stats import norm, t
from sklearn.metrics import mean_pinball_loss

from forecaster.evaluation.probabilistic import (
    CRPS_LEVELS,
    PROBABILISTIC_METRIC_NAMES,
    crps,
    pinball_loss,
    pit_histogram,
    score_quantiles,
    scoring_levels,
    share_below,
    winkler_score,
)
from forecaster.models.base import QUANTILE_LEVELS

LEVELS = (0.05, 0.1, 0.5, 0.9, 0.95)
ORIGIN = np.array([100.0])
QUANTILES = np.array([[[90.0, 95.0, 100.0, 105.0, 110.0], [80.0, 90.0, 100.0, 110.0, 120.0]]])
ACTUAL = np.array([[112.0, 85.0]])  # above every quantile; between the 0.05 and 0.1 ones
# y - q, step 1: [22, 17, 12, 7, 2]      -> tau * e:        1.1, 1.7, 6, 6.3, 1.9  (sum 17)
# y - q, step 2: [5, -5, -15, -25, -35]  -> 0.25, 4.5, 7.5, 2.5, 1.75              (sum 16.5)
# the random walk's absolute errors: 12 and 15


def scores(reported=LEVELS):
    return score_quantiles(QUANTILES, LEVELS, ACTUAL, ORIGIN, reported)


def test_scores_match_hand_computed_values():
    m = scores().summary()
    assert set(m) == set(PROBABILISTIC_METRIC_NAMES)
    assert m["pinball"] == pytest.approx((17 / 5 + 16.5 / 5) / 2)  # 3.35
    assert m["pinball_scaled"] == pytest.approx(3.35 / 13.5)
    # CRPS: trapezoid of 2 * pinball over tau = 0, levels, 1 (0 at the ends).
    # step 1: f = 0, 2.2, 3.4, 12, 12.6, 3.8, 0 -> 0.055 + 0.14 + 3.08 + 4.92 + 0.41 + 0.095
    # step 2: f = 0, 0.5, 9, 15, 5, 3.5, 0      -> 0.0125 + 0.2375 + 4.8 + 4.0 + 0.2125 + 0.0875
    assert m["crps"] == pytest.approx((8.7 + 9.35) / 2)
    assert m["crps_scaled"] == pytest.approx(9.025 / 13.5)
    assert m["coverage_90"] == 0.5  # [90, 110] misses 112; [80, 120] holds 85
    assert m["coverage_80"] == 0.0  # [95, 105] misses 112; [90, 110] misses 85
    assert m["width_90"] == pytest.approx((0.2 + 0.4) / 2)
    # Winkler: width + 20 * miss: 20 + 20 * 2 = 60, and 40
    assert m["winkler_90"] == pytest.approx(50.0)
    assert m["winkler_90_scaled"] == pytest.approx(50 / 13.5)
    assert all(type(v) is float for v in m.values())


def test_each_step_is_scored_on_its_own():
    first, second = scores().by_step()
    assert first["pinball"] == pytest.approx(3.4)
    assert first["pinball_scaled"] == pytest.approx(3.4 / 12)
    assert first["crps"] == pytest.approx(8.7)
    assert (first["coverage_90"], second["coverage_90"]) == (0.0, 1.0)
    assert (first["winkler_90"], second["winkler_90"]) == pytest.approx((60.0, 40.0))
    assert second["crps_scaled"] == pytest.approx(9.35 / 15)


def test_pinball_averages_the_reported_levels_only_and_crps_uses_them_all():
    median_only = scores(reported=(0.5,)).summary()
    assert median_only["pinball"] == pytest.approx((6 + 7.5) / 2)  # the median's loss: |e| / 2
    assert median_only["crps"] == scores().summary()["crps"]
    with pytest.raises(ValueError, match=r"no quantile at level\(s\) \[0\.25\]"):
        scores(reported=(0.25, 0.5))


def test_an_interval_without_its_bounds_among_the_levels_scores_nan():
    levels = (0.1, 0.5, 0.9)
    m = score_quantiles(QUANTILES[..., 1:4], levels, ACTUAL, ORIGIN, levels).summary()
    assert m["coverage_80"] == 0.0
    for name in ("coverage_90", "width_90", "winkler_90", "winkler_90_scaled"):
        assert np.isnan(m[name])


def test_bad_shapes_and_values_are_refused():
    with pytest.raises(ValueError, match=r"expected quantiles \[n, horizon, 5\]"):
        score_quantiles(QUANTILES[:, :1], LEVELS, ACTUAL, ORIGIN, LEVELS)
    with pytest.raises(ValueError, match="actual contains NaN"):
        score_quantiles(QUANTILES, LEVELS, ACTUAL * np.nan, ORIGIN, LEVELS)


# -- against independent implementations ---------------------------------------------------------


def test_pinball_loss_matches_scikit_learn():
    rng = np.random.default_rng(0)
    actual = rng.normal(100, 5, size=(40, 3))
    quantiles = np.sort(rng.normal(100, 5, size=(40, 3, len(QUANTILE_LEVELS))), axis=-1)
    losses = pinball_loss(quantiles, QUANTILE_LEVELS, actual)
    for k, level in enumerate(QUANTILE_LEVELS):
        expected = mean_pinball_loss(actual.ravel(), quantiles[..., k].ravel(), alpha=level)
        assert losses[..., k].mean() == pytest.approx(expected, rel=1e-12)


def test_crps_on_the_dense_grid_matches_the_closed_form_for_a_normal():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(100, 10, size=(500, 2)), rng.uniform(0.5, 3, size=(500, 2))
    actual = rng.normal(mu, 1.3 * sigma)  # a little wider than forecast, as in life
    quantiles = mu[..., None] + sigma[..., None] * norm.ppf(CRPS_LEVELS)
    ours = crps(quantiles, CRPS_LEVELS, actual)
    exact = properscoring.crps_gaussian(actual, mu, sigma)
    assert ours.mean() == pytest.approx(exact.mean(), rel=5e-4)
    np.testing.assert_allclose(ours, exact, rtol=0.02, atol=0.01 * sigma.mean())


def test_crps_of_a_fat_tailed_forecast_matches_properscoring_on_an_ensemble():
    """Student-t with 4 degrees of freedom, against properscoring's ensemble CRPS on 1000
    stratified draws (the expected |X - y| - |X - X'| / 2 form, independent of quantiles)."""
    rng = np.random.default_rng(2)
    actual = t.rvs(4, size=60, random_state=rng)
    ensemble = t.ppf((np.arange(1000) + 0.5) / 1000, 4)
    quantiles = np.broadcast_to(t.ppf(CRPS_LEVELS, 4), (60, 1, len(CRPS_LEVELS)))
    ours = crps(quantiles, CRPS_LEVELS, actual[:, None])[:, 0]
    reference = np.array([properscoring.crps_ensemble(y, ensemble) for y in actual])
    assert ours.mean() == pytest.approx(reference.mean(), rel=0.01)


def test_the_crps_of_a_point_forecast_is_its_absolute_error():
    point = np.full((1, 2, len(CRPS_LEVELS)), 100.0)
    np.testing.assert_allclose(crps(point, CRPS_LEVELS, ACTUAL), [[12 * 0.99, 15 * 0.99]])
    # (0.99, not 1: the integrand is taken as 0 at tau = 0 and 1, which a point mass is not)


def test_winkler_is_the_interval_score_built_from_two_pinball_losses():
    rng = np.random.default_rng(3)
    actual = rng.normal(size=1000)
    lower, upper = -rng.uniform(0, 2, 1000), rng.uniform(0, 2, 1000)
    bounds = np.stack([lower, upper], axis=-1)[:, None]
    two = pinball_loss(bounds, (0.05, 0.95), actual[:, None])[:, 0]
    np.testing.assert_allclose(winkler_score(lower, upper, actual, 0.9), (2 / 0.1) * two.sum(-1))


def test_a_forecast_of_the_true_distribution_covers_at_the_nominal_rate():
    """Monte Carlo: actuals drawn from the forecast distribution itself."""
    rng = np.random.default_rng(4)
    n, horizon = 4000, 3
    levels = scoring_levels(QUANTILE_LEVELS)
    origin = np.full(n, 100.0)
    sigma = np.array([1.0, 1.5, 2.0])
    actual = origin[:, None] + sigma * rng.standard_normal((n, horizon))
    quantiles = origin[:, None, None] + sigma[:, None] * norm.ppf(levels)
    m = score_quantiles(quantiles, levels, actual, origin, QUANTILE_LEVELS).summary()
    for nominal in (0.8, 0.9):  # within 4 standard errors
        assert abs(m[f"coverage_{round(100 * nominal)}"] - nominal) < 4 * np.sqrt(
            nominal * (1 - nominal) / (n * horizon)
        )
    empirical = share_below(quantiles, actual).mean(axis=0)
    np.testing.assert_allclose(empirical, levels, atol=0.02)
    edges, density = pit_histogram(quantiles, levels, actual)
    np.testing.assert_allclose(edges, np.linspace(0, 1, 21))
    np.testing.assert_allclose(density, 1.0, atol=0.2)


def test_too_narrow_intervals_undercover_and_give_a_u_shaped_pit():
    rng = np.random.default_rng(5)
    actual = 100 + 2.0 * rng.standard_normal((4000, 1))
    quantiles = 100 + 1.0 * norm.ppf(CRPS_LEVELS)[None, None, :] * np.ones((4000, 1, 1))
    m = score_quantiles(quantiles, CRPS_LEVELS, actual, np.full(4000, 100.0), LEVELS).summary()
    assert m["coverage_90"] < 0.7
    _, density = pit_histogram(quantiles, CRPS_LEVELS, actual)
    assert density[0] > 3 and density[-1] > 3 and density[10] < 0.6


def test_a_pit_histogram_on_coarse_levels_uses_them_as_edges():
    edges, density = pit_histogram(QUANTILES, LEVELS, ACTUAL)
    np.testing.assert_allclose(edges, [0, *LEVELS, 1])
    # 112 is above every quantile (last bin, width 0.05); 85 is in [0.05, 0.1) (width 0.05)
    np.testing.assert_allclose(density, [0, 0.5 / 0.05, 0, 0, 0, 0.5 / 0.05])
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)


def test_the_scoring_grid_holds_the_reported_levels_and_the_crps_grid():
    levels = scoring_levels((0.025, 0.5, 0.975))
    assert {0.025, 0.975} <= set(levels) and set(CRPS_LEVELS) <= set(levels)
    assert list(levels) == sorted(levels)
    assert set(QUANTILE_LEVELS) <= set(CRPS_LEVELS)

"""The Diebold-Mariano test against an independent implementation (the `dieboldmariano`
package, pure Python, written from the same papers), and on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from dieboldmariano import dm_test

from forecaster.evaluation.significance import diebold_mariano, loss


def forecasts(n: int, seed: int):
    rng = np.random.default_rng(seed)
    actual = np.cumsum(rng.normal(size=n))
    a = actual + rng.normal(0, 1.0, n)
    b = actual + rng.normal(0.1, 1.1, n)
    return actual, a, b


@pytest.mark.parametrize("kind", ["squared", "absolute"])
@pytest.mark.parametrize(("horizon", "n"), [(1, 40), (5, 40), (1, 250), (5, 250), (20, 250)])
def test_matches_the_dieboldmariano_package(kind, horizon, n):
    actual, a, b = forecasts(n, seed=horizon * n)
    ours = diebold_mariano(loss(a - actual, kind), loss(b - actual, kind), horizon=horizon)
    cost = (lambda u, v: (u - v) ** 2) if kind == "squared" else (lambda u, v: abs(u - v))
    statistic, p_value = dm_test(
        list(actual), list(a), list(b), loss=cost, h=horizon, harvey_correction=True
    )
    assert ours.statistic == pytest.approx(statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(p_value, rel=1e-6)
    assert ours.lag == horizon - 1 and ours.n == n


def test_a_negative_rectangular_variance_falls_back_to_bartlett_weights():
    actual, a, b = forecasts(40, seed=800)  # 20 lags of 40 origins: the rectangular sum is < 0
    cost = lambda u, v: (u - v) ** 2  # noqa: E731
    with pytest.raises(ArithmeticError):
        dm_test(list(actual), list(a), list(b), loss=cost, h=20)
    statistic, p_value = dm_test(
        list(actual), list(a), list(b), loss=cost, h=20, variance_estimator="bartlett"
    )
    ours = diebold_mariano(loss(a - actual, "squared"), loss(b - actual, "squared"), horizon=20)
    assert ours.statistic == pytest.approx(statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(p_value, rel=1e-6)


def test_a_clearly_better_forecast_is_significant_and_its_sign_says_which():
    rng = np.random.default_rng(0)
    good, bad = rng.normal(0, 1, 500), rng.normal(0, 2, 500)
    test = diebold_mariano(loss(good, "absolute"), loss(bad, "absolute"), horizon=1)
    assert test.statistic < 0 and test.mean_loss_difference < 0  # a has the smaller loss
    assert test.p_value < 1e-6
    assert diebold_mariano(loss(bad, "absolute"), loss(good, "absolute")).statistic > 0


def test_equally_good_forecasts_are_rarely_called_different():
    """Under the null the p-value is uniform: about 5 % of tests fall below 0.05."""
    rng = np.random.default_rng(1)
    p_values = [
        diebold_mariano(
            loss(rng.normal(size=200), "squared"), loss(rng.normal(size=200), "squared")
        ).p_value
        for _ in range(400)
    ]
    assert 0.02 < np.mean(np.array(p_values) < 0.05) < 0.09


def test_identical_losses_give_no_verdict():
    same = np.ones(10)
    test = diebold_mariano(same, same, horizon=2)
    assert np.isnan(test.statistic) and np.isnan(test.p_value)


def test_bad_arguments_say_what_is_needed():
    with pytest.raises(ValueError, match="at least 2 origins"):
        diebold_mariano(np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="1 <= horizon <= n"):
        diebold_mariano(np.ones(5), np.zeros(5), horizon=6)
    with pytest.raises(ValueError, match="loss must be one of"):
        loss(np.ones(3), "pinball")

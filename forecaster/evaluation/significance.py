"""Is a difference in accuracy more than luck? The Diebold-Mariano test.

Diebold and Mariano (1995) test whether two forecasts of the same series have equal expected
loss, from the loss differential ``d_t = L(e_a,t) - L(e_b,t)`` over forecast origins. Forecasts
``h`` steps ahead from consecutive origins overlap, so ``d_t`` is autocorrelated up to lag
``h - 1``: its long-run variance is the autocovariance sum over lags ``0 .. h - 1`` (the
rectangular kernel), falling back to Bartlett weights when that sum is not positive. Harvey,
Leybourne and Newbold (1997) scale the statistic by
``sqrt((n + 1 - 2h + h(h - 1) / n) / n)`` and compare it with Student's t with ``n - 1``
degrees of freedom, which keeps the test's size right in samples of a few hundred origins.
`tests/test_significance.py` checks this implementation against the independent
`dieboldmariano` package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LOSSES = ("squared", "absolute")


@dataclass(frozen=True)
class DieboldMariano:
    statistic: float  # < 0: forecast a has the smaller loss
    p_value: float  # two-sided; NaN when the losses never differ
    mean_loss_difference: float  # mean of L(a) - L(b)
    n: int  # forecast origins
    lag: int  # autocovariance lags in the variance: horizon - 1


def loss(errors: np.ndarray, kind: str) -> np.ndarray:
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    errors = np.asarray(errors, dtype=np.float64)
    return errors**2 if kind == "squared" else np.abs(errors)


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, *, horizon: int = 1) -> DieboldMariano:
    """Test equal expected loss from per-origin losses of forecasts a and b (same origins)."""
    d = np.asarray(loss_a, dtype=np.float64) - np.asarray(loss_b, dtype=np.float64)
    n = len(d)
    if d.ndim != 1 or n < 2 or horizon < 1 or horizon > n:
        raise ValueError(
            f"need two equal 1-D loss series of at least 2 origins and 1 <= horizon <= n; got "
            f"shape {d.shape} and horizon {horizon}"
        )
    mean = float(d.mean())
    centred = d - mean
    autocovariance = np.array([centred[k:] @ centred[: n - k] / n for k in range(horizon)])
    variance = (autocovariance[0] + 2 * autocovariance[1:].sum()) / n
    if variance <= 0:  # the rectangular kernel can go negative; Bartlett's cannot
        weights = 1 - np.arange(horizon) / horizon
        variance = (autocovariance[0] + 2 * (weights[1:] * autocovariance[1:]).sum()) / n
    if variance <= 0:
        return DieboldMariano(math.nan, math.nan, mean, n, horizon - 1)
    correction = math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    statistic = correction * mean / math.sqrt(variance)
    p_value = float(2 * stats.t.sf(abs(statistic), df=n - 1))
    return DieboldMariano(statistic, p_value, mean, n, horizon - 1)

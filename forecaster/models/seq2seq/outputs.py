"""What the decoder's distributional outputs mean, and how they become price quantiles.

No TensorFlow here: the in-memory forecaster and the exported model (`forecaster.serving`) both
turn the graph's `distribution` output into prices with these functions, so the two agree
exactly.

With `model.output` = `quantiles` or `student_t`, decoder step k (1-based) describes the
*cumulative* scaled return from the origin to step k, ``S_k = z_1 + ... + z_k`` (``z`` the
scaled log returns, ``z = (r - mean) / std``), in units of ``sqrt(k)``: the network outputs the
distribution of ``U_k = S_k / sqrt(k)``, whose spread stays near 1 at every step (a random walk's
``S_k`` spreads as ``sqrt(k)``), and the graph multiplies by ``sqrt(k)``. The price at step k is
``p_t * exp(std * S_k + k * mean)``, an increasing function of ``S_k``, so each quantile of
``S_k`` maps exactly onto the same quantile of the price: no sampling, no approximation.

The graph's `distribution` output, per origin and step, in ``S_k`` units:

- `quantiles`: the quantiles of ``S_k`` at the configured levels, non-decreasing by construction;
- `student_t`: ``(loc, scale, df)`` with ``S_k = loc + scale * T_df``.

`model.calibration=scale` then widens or narrows each step's quantiles around its median by one
factor per step (`scale_intervals`), fitted on the validation part (`fit_interval_scale`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from forecaster.data.windows import Scaler
from forecaster.errors import ConfigError
from forecaster.models.base import MEDIAN

POINT = "point"
STUDENT_T_PARAMS = 3  # loc, scale, degrees of freedom
MIN_DF = 2.0  # degrees of freedom above 2: the distribution has a variance
# The factors model.calibration=scale chooses among: log-spaced from a fifth to five times the
# network's spread, 1 % apart (the loss is convex in the factor, so a fine grid finds its
# minimum to within that step without an optimiser's tolerances).
SCALE_GRID = np.exp(np.linspace(np.log(0.2), np.log(5.0), 325))


def num_params(output: str, levels: Sequence[float]) -> int:
    """Numbers the network outputs per step: 1 for a point, one per level for quantiles, 3 for
    a Student-t."""
    return {"point": 1, "quantiles": len(levels), "student_t": STUDENT_T_PARAMS}[output]


def initial_bias(output: str, levels: Sequence[float]) -> np.ndarray:
    """The projection's initial bias [P]: the distribution a network starts from, a standard
    normal U (the scaled returns have unit variance on the training part, so ``U_k`` does for
    a random walk) for `quantiles`, a unit-scale Student-t with 5 degrees of freedom for
    `student_t`; zeros for a point. Starting there, training refines a sensible distribution
    rather than first shrinking an arbitrary one."""
    if output == "quantiles":
        levels = [float(level) for level in levels]
        z = stats.norm.ppf(levels)
        median = levels.index(0.5)
        steps_up = np.diff(z[median:])
        steps_down = np.diff(z[: median + 1])[::-1]
        return np.concatenate([[0.0], _inverse_softplus(steps_up), _inverse_softplus(steps_down)])
    if output == "student_t":
        return np.array([0.0, _inverse_softplus(1.0), _inverse_softplus(5.0 - MIN_DF)])
    return np.zeros(1)


def _inverse_softplus(y):
    return np.log(np.expm1(y))


def check_output_target(output: str, target: str) -> None:
    """Distributional outputs describe cumulative log returns, so they need `log_return`."""
    if output != POINT and target != "log_return":
        raise ConfigError(
            f"model.output={output!r} forecasts the distribution of the cumulative log return "
            f"and needs data.target=log_return, not {target!r}. Fix: set "
            "data.target=log_return, or model.output=point to forecast prices."
        )


def cumulative_quantiles(
    output: str, distribution: np.ndarray, levels: Sequence[float]
) -> np.ndarray:
    """[n, horizon, len(levels)]: quantiles of ``S_k`` from the graph's `distribution` output."""
    distribution = np.asarray(distribution, dtype=np.float64)
    if output == "quantiles":
        return distribution
    if output == "student_t":
        loc, scale, df = (distribution[..., i, np.newaxis] for i in range(STUDENT_T_PARAMS))
        return loc + scale * stats.t.ppf(np.asarray(levels, dtype=np.float64), df)
    raise ValueError(f"model.output={output!r} has no distribution")


def quantiles_to_prices(
    cumulative: np.ndarray, origin_prices: np.ndarray, scaler: Scaler
) -> np.ndarray:
    """Quantiles of ``S_k`` [n, horizon, Q] to quantiles of the price [n, horizon, Q]:
    ``p_t * exp(std * S_k + k * mean)``."""
    cumulative = np.asarray(cumulative, dtype=np.float64)
    steps = np.arange(1, cumulative.shape[1] + 1, dtype=np.float64)[:, np.newaxis]
    log_return = scaler.std * cumulative + scaler.mean * steps
    origin = np.asarray(origin_prices, dtype=np.float64)[:, np.newaxis, np.newaxis]
    return origin * np.exp(log_return)


def scale_intervals(
    cumulative: np.ndarray, scale: Sequence[float], levels: Sequence[float]
) -> np.ndarray:
    """Quantiles [n, horizon, Q] with step k's distances from the median multiplied by
    ``scale[k]`` (> 0): the median is unchanged and the quantiles stay in order."""
    cumulative = np.asarray(cumulative, dtype=np.float64)
    median = cumulative[..., [_median_index(levels)]]
    factor = np.asarray(scale, dtype=np.float64)[:, np.newaxis]
    return median + factor * (cumulative - median)


def fit_interval_scale(
    cumulative: np.ndarray, realised: np.ndarray, levels: Sequence[float]
) -> np.ndarray:
    """model.calibration=scale: per step, the factor of `SCALE_GRID` whose `scale_intervals`
    minimise the pinball loss (averaged over the levels) of `cumulative` [n, horizon, Q]
    quantiles of S_k against the `realised` S_k [n, horizon]. Fitted on validation windows only,
    so a model narrows intervals its training made too wide and widens those too narrow, in the
    score the forecasts are judged by (the pinball loss is a proper score: its minimum is the
    calibrated quantile, not a target coverage). Returns [horizon] factors; 1 where there is
    nothing to fit (no windows, or the median is the only level)."""
    cumulative = np.asarray(cumulative, dtype=np.float64)
    realised = np.asarray(realised, dtype=np.float64)
    horizon = cumulative.shape[1]
    if len(cumulative) == 0 or len(levels) == 1:
        return np.ones(horizon)
    tau = np.asarray(levels, dtype=np.float64)
    median = cumulative[..., [_median_index(levels)]]
    offsets = cumulative - median  # [n, H, Q]
    surprise = realised[..., np.newaxis] - median  # [n, H, 1]
    scale = np.empty(horizon)
    for k in range(horizon):  # one step at a time: [grid, n, Q] stays small
        error = surprise[:, k] - SCALE_GRID[:, None, None] * offsets[:, k]
        loss = np.mean(np.maximum(tau * error, (tau - 1.0) * error), axis=(1, 2))
        scale[k] = SCALE_GRID[np.argmin(loss)]
    return scale


def _median_index(levels: Sequence[float]) -> int:
    return [float(level) for level in levels].index(MEDIAN)

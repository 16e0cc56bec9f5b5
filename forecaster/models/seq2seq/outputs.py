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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from forecaster.data.windows import Scaler
from forecaster.errors import ConfigError

POINT = "point"
STUDENT_T_PARAMS = 3  # loc, scale, degrees of freedom
MIN_DF = 2.0  # degrees of freedom above 2: the distribution has a variance


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

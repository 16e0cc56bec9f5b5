"""Scores of quantile forecasts, in prices: how sharp the intervals are and whether they hold.

Every function takes ``quantiles`` [n, horizon, Q] (prices, at increasing ``levels``) and the
realised ``actual`` prices [n, horizon], one row per forecast origin. `score_quantiles` computes
every score per cell; `IntervalScores.summary` averages them over all cells or one step.

- **pinball**: the quantile (pinball) loss ``rho_tau(y - q) = max(tau (y - q), (tau - 1)(y - q))``
  averaged over the reported levels (`model.quantiles`) and cells, in price units.
  ``pinball_scaled`` divides it by the random walk's MAE on the same cells (``|y - p_t|``), so
  it compares across series and price levels.
- **crps**: the continuous ranked probability score, in price units, from the forecast's own
  quantile grid: ``CRPS = 2 * integral_0^1 rho_tau(y - q_tau) dtau``, integrated by the
  trapezoidal rule over the levels with the integrand 0 at tau = 0 and 1. On the 99-level grid
  `CRPS_LEVELS` (0.01 .. 0.99) it is within 0.05 % of the closed form for a normal (tested
  against `properscoring`); on the 7 default levels alone it is about 3.5 % low, so the
  probabilistic baselines are asked for `scoring_levels`. The CRPS of a point forecast is its
  absolute error, so ``crps_scaled`` (CRPS / the random walk's MAE) below 1 means the
  distribution beats the random walk's point.
- **coverage_80, coverage_90**: the share of actuals inside the central 80 % (0.1 .. 0.9
  quantiles) and 90 % (0.05 .. 0.95) intervals; nominal 0.8 and 0.9.
- **width_90**: the 90 % interval's width relative to the origin's price (0.05 = 5 %).
- **winkler_90**: the 90 % interval (Winkler) score of bounds ``l, u``: the width ``u - l``, plus
  ``(2 / 0.1) * (l - y)`` when ``y < l`` or ``(2 / 0.1) * (y - u)`` when ``y > u``, a penalty for
  every miss; lower is better, in price units (``winkler_90_scaled``: / the random walk's MAE).

An interval whose bounds are not among the forecast's levels scores NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forecaster.models.base import select_levels

# A dense, evenly spaced grid for the CRPS integral; it holds the default reported levels.
CRPS_LEVELS = tuple(round(k / 100, 2) for k in range(1, 100))
COVERAGES = (0.8, 0.9)  # the central intervals scored
WIDEST = 0.9  # the interval whose width and Winkler score are reported
PROBABILISTIC_METRIC_NAMES = (
    "pinball",
    "pinball_scaled",
    "crps",
    "crps_scaled",
    "coverage_80",
    "coverage_90",
    "width_90",
    "winkler_90",
    "winkler_90_scaled",
)


def scoring_levels(reported: Sequence[float]) -> tuple[float, ...]:
    """The levels to ask a probabilistic baseline for: the reported ones and the CRPS grid."""
    return tuple(sorted({*CRPS_LEVELS, *(float(level) for level in reported)}))


def quantile_column(level: float) -> str:
    """The column a quantile is stored under in tables: q0.05, q0.5, q0.95."""
    return f"q{level:g}"


def central_bounds(coverage: float) -> tuple[float, float]:
    """The levels bounding the central interval of `coverage`: 0.9 -> (0.05, 0.95)."""
    return round((1 - coverage) / 2, 10), round((1 + coverage) / 2, 10)


def pinball_loss(quantiles: np.ndarray, levels: Sequence[float], actual: np.ndarray) -> np.ndarray:
    """[n, horizon, Q]: ``rho_tau(y - q)`` for every cell and level."""
    tau = np.asarray(levels, dtype=np.float64)
    error = np.asarray(actual, dtype=np.float64)[..., np.newaxis] - quantiles
    return np.maximum(tau * error, (tau - 1) * error)


def crps(quantiles: np.ndarray, levels: Sequence[float], actual: np.ndarray) -> np.ndarray:
    """[n, horizon]: the CRPS from the quantile grid (trapezoidal rule over the levels, the
    integrand ``2 rho_tau(y - q_tau)`` taken as 0 at tau = 0 and 1)."""
    integrand = 2 * pinball_loss(quantiles, levels, actual)
    zeros = np.zeros((*integrand.shape[:-1], 1))
    tau = np.concatenate([[0.0], np.asarray(levels, dtype=np.float64), [1.0]])
    return np.trapezoid(np.concatenate([zeros, integrand, zeros], axis=-1), tau, axis=-1)


def winkler_score(
    lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, coverage: float
) -> np.ndarray:
    """The interval score of central intervals [lower, upper] of nominal `coverage`."""
    alpha = 1 - coverage
    below = np.maximum(lower - actual, 0.0)
    above = np.maximum(actual - upper, 0.0)
    return (upper - lower) + (2 / alpha) * (below + above)


def share_below(quantiles: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """[..., Q] over the origins (axis 0): the share of actuals at or below each quantile,
    the empirical level of a nominal one. `quantiles` [n, horizon, Q] -> [horizon, Q]."""
    return np.mean(np.asarray(actual)[..., np.newaxis] <= quantiles, axis=0)


def pit_histogram(
    quantiles: np.ndarray, levels: Sequence[float], actual: np.ndarray, bins: int = 20
) -> tuple[np.ndarray, np.ndarray]:
    """The histogram of the probability integral transform ``F(y)`` over all cells, exact at
    the forecast's levels: the share of actuals between consecutive quantiles is the share of
    PIT values between their levels. Edges are the multiples of ``1 / bins`` among the levels
    (all the levels when they are not all there). Returns (edges, density): a calibrated
    forecast has density 1 everywhere; a U shape means intervals too narrow, a hump too wide,
    a slope a biased median."""
    levels = [float(level) for level in levels]
    wanted = [round(k / bins, 10) for k in range(1, bins)]
    inner = wanted if all(w in levels for w in wanted) else levels
    below = share_below(select_levels(levels, quantiles, inner), actual).reshape(-1, len(inner))
    cdf = np.concatenate([[0.0], below.mean(axis=0), [1.0]])
    edges = np.array([0.0, *inner, 1.0])
    return edges, np.diff(cdf) / np.diff(edges)


@dataclass(frozen=True)
class IntervalScores:
    """Every score of one probabilistic forecast, per cell [n, horizon]."""

    pinball: np.ndarray  # mean over the reported levels
    crps: np.ndarray
    naive_abs_error: np.ndarray  # the random walk's |y - p_t|, the scale of the *_scaled scores
    covered: dict[float, np.ndarray]  # coverage -> inside the central interval (NaN: no bounds)
    width: np.ndarray  # of the WIDEST interval, relative to the origin's price
    winkler: np.ndarray  # of the WIDEST interval

    def summary(self, step: int | None = None) -> dict[str, float]:
        """The scores averaged over every cell, or over the origins at one `step` (1-based)."""
        cells = slice(None) if step is None else (slice(None), step - 1)

        def mean(values: np.ndarray) -> float:
            return float(np.mean(values[cells]))

        naive = mean(self.naive_abs_error)

        def scaled(value: float) -> float:  # prices that never moved have no scale
            return value / naive if naive > 0 else math.nan

        scores = {
            "pinball": mean(self.pinball),
            "pinball_scaled": scaled(mean(self.pinball)),
            "crps": mean(self.crps),
            "crps_scaled": scaled(mean(self.crps)),
        }
        scores |= {
            f"coverage_{round(100 * c)}": mean(covered) for c, covered in self.covered.items()
        }
        scores |= {
            "width_90": mean(self.width),
            "winkler_90": mean(self.winkler),
            "winkler_90_scaled": scaled(mean(self.winkler)),
        }
        return scores

    def by_step(self) -> list[dict[str, float]]:
        return [self.summary(step) for step in range(1, self.pinball.shape[1] + 1)]


def score_quantiles(
    quantiles: np.ndarray,
    levels: Sequence[float],
    actual: np.ndarray,
    origin_prices: np.ndarray,
    reported: Sequence[float],
) -> IntervalScores:
    """Score `quantiles` [n, horizon, Q] at `levels` against `actual` [n, horizon]: pinball over
    the `reported` levels (each one of `levels`), CRPS over all `levels`, the intervals from
    their bounds when `levels` has them."""
    quantiles = np.asarray(quantiles, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    origin_prices = np.asarray(origin_prices, dtype=np.float64)
    if (
        quantiles.ndim != 3
        or quantiles.shape[:2] != actual.shape
        or quantiles.shape[2] != len(levels)
    ):
        raise ValueError(
            f"expected quantiles [n, horizon, {len(levels)}] and actual [n, horizon], got "
            f"shapes {quantiles.shape} and {actual.shape}"
        )
    if origin_prices.shape != actual.shape[:1]:
        raise ValueError(f"expected origin_prices [n], got shape {origin_prices.shape}")
    if actual.size == 0:
        raise ValueError("cannot score an empty forecast (n or horizon is 0)")
    for name, values in (("quantiles", quantiles), ("actual", actual)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contains NaN or infinite values")

    def interval(coverage: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The (lower, upper) bounds of the central interval, if `levels` has them."""
        bounds = central_bounds(coverage)
        if not set(bounds) <= {float(level) for level in levels}:
            return None
        values = select_levels(levels, quantiles, bounds)
        return values[..., 0], values[..., 1]

    missing = np.full(actual.shape, np.nan)
    covered = {}
    for coverage in COVERAGES:
        bounds = interval(coverage)
        covered[coverage] = (
            missing if bounds is None else ((bounds[0] <= actual) & (actual <= bounds[1])) * 1.0
        )
    width = winkler = missing
    if (widest := interval(WIDEST)) is not None:
        lower, upper = widest
        width = (upper - lower) / origin_prices[:, np.newaxis]
        winkler = winkler_score(lower, upper, actual, WIDEST)
    reported_pinball = pinball_loss(select_levels(levels, quantiles, reported), reported, actual)
    return IntervalScores(
        pinball=reported_pinball.mean(axis=-1),
        crps=crps(quantiles, levels, actual),
        naive_abs_error=np.abs(actual - origin_prices[:, np.newaxis]),
        covered=covered,
        width=width,
        winkler=winkler,
    )

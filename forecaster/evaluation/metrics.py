"""Forecast metrics in price space.

All metrics take ``[n, horizon]`` price arrays (one row per forecast origin) and average over
every cell, so each horizon step weighs the same.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("mae", "rmse", "smape", "mase", "directional_accuracy")


def _as_finite(name: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return values


def forecast_metrics(
    forecast: np.ndarray, actual: np.ndarray, origin: np.ndarray, mase_scale: float
) -> dict[str, float]:
    """Score ``[n, horizon]`` price forecasts against the realised prices.

    - ``mae``, ``rmse``: over all cells, in price units.
    - ``smape``: in percent, ``mean(200 * |f - a| / (|f| + |a|))``.
    - ``mase``: ``mae / mase_scale``, the scale being the in-sample one-step naive MAE of the
      training prices, so 1.0 means "as good as yesterday's price on the training data".
    - ``directional_accuracy``: fraction of cells where the forecast moves the same way from the
      origin price as the actual price did (``sign(f - origin) == sign(a - origin)``).
    """
    forecast = _as_finite("forecast", forecast)
    actual = _as_finite("actual", actual)
    origin = _as_finite("origin", origin)
    if forecast.ndim != 2 or forecast.shape != actual.shape or origin.shape != forecast.shape[:1]:
        raise ValueError(
            f"expected forecast and actual [n, horizon] and origin [n], got shapes "
            f"{forecast.shape}, {actual.shape} and {origin.shape}"
        )
    if forecast.size == 0:
        raise ValueError("cannot score an empty forecast (n or horizon is 0)")
    if not (np.isfinite(mase_scale) and mase_scale > 0):
        raise ValueError(f"mase_scale must be finite and > 0, got {mase_scale!r}")

    abs_err = np.abs(forecast - actual)
    denom = np.abs(forecast) + np.abs(actual)
    # Both zero means a perfect forecast: count it as 0 % rather than 0/0.
    smape_cells = np.divide(200 * abs_err, denom, out=np.zeros_like(abs_err), where=denom > 0)
    mae = float(np.mean(abs_err))
    start = origin[:, np.newaxis]
    return {
        "mae": mae,
        "rmse": _rms(abs_err),
        "smape": float(np.mean(smape_cells)),
        "mase": mae / float(mase_scale),
        "directional_accuracy": float(
            np.mean(np.sign(forecast - start) == np.sign(actual - start))
        ),
    }


def _rms(values: np.ndarray) -> float:
    """Root mean square, computed on values scaled by their largest so that squaring cannot
    overflow (prices near 1e300 give a finite RMSE)."""
    largest = float(np.max(values))
    if largest == 0:
        return 0.0
    return largest * float(np.sqrt(np.mean((values / largest) ** 2)))


def mase_scale(train_prices: np.ndarray) -> float:
    """MASE's denominator: the in-sample one-step naive MAE, mean |p_t - p_{t-1}| over the
    training prices (so 1.0 means as good as yesterday's price was on the training data)."""
    return float(np.mean(np.abs(np.diff(np.asarray(train_prices, dtype=np.float64)))))

"""The one protocol every forecaster implements, deep or not.

A forecaster learns from a past price series (`fit`) and forecasts the `horizon` prices after
each of a batch of origins (`predict`). An origin is a position in the price series; the forecast
from origin ``t`` may use ``prices[: t + 1]`` and nothing after it. `tests/test_models.py` runs
every registered forecaster through the same checks (shapes, no look-ahead, determinism for a
seed, clear errors).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Self

import numpy as np
import pandas as pd

from forecaster.errors import DataError, NotFittedError


@dataclass(frozen=True)
class Forecast:
    """Forecasts from a batch of origins, in prices."""

    origins: np.ndarray  # [n] positions in the price series
    prices: np.ndarray  # [n, horizon] point forecasts
    # Recurrent models only, per layer (c, h) each [n, num_units]: the state each forecast
    # started from (the encoder's final state, handed to the decoder) and the decoder's state
    # after its last step.
    encoder_state: tuple | None = None
    decoder_state: tuple | None = None

    def __len__(self) -> int:
        return len(self.origins)


class Forecaster(Protocol):
    horizon: int

    @property
    def min_history(self) -> int:
        """Bars needed up to and including an origin (the first origin is `min_history - 1`)."""
        ...

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        """Learn from `train`. `val` continues it in time and is only for choosing (early
        stopping, model selection), never for fitting weights; without it a model fits as
        configured and keeps what it ends with."""
        ...

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        """Forecast the `horizon` prices after each origin from `prices[: origin + 1]`."""
        ...


def check_fitted(model: object, attribute: str) -> None:
    """Raise `NotFittedError` unless `fit` has set `attribute` (scikit-learn's convention)."""
    if getattr(model, attribute, None) is None:
        raise NotFittedError(
            f"this {type(model).__name__} is not fitted yet: call fit(train, val) before predict."
        )


def check_origins(prices: pd.Series, origins: np.ndarray, min_history: int) -> np.ndarray:
    """`origins` as int positions, each with `min_history` bars up to it, inside `prices`."""
    origins = np.asarray(origins)
    if origins.ndim != 1 or not np.issubdtype(origins.dtype, np.integer):
        raise DataError(
            f"origins must be a 1-D array of integer positions in the price series, got "
            f"{origins.dtype} with shape {origins.shape}"
        )
    early = origins < min_history - 1
    late = origins >= len(prices)
    if early.any() or late.any():
        bad = int(origins[early | late][0])
        raise DataError(
            f"cannot forecast from position {bad} of a {len(prices)}-bar series: this model "
            f"needs {min_history} bars up to an origin, so origins must lie in "
            f"[{min_history - 1}, {len(prices) - 1}]"
        )
    return origins.astype(np.int64)


def check_series(prices: pd.Series, name: str, min_length: int) -> None:
    """A fit input: a positive, finite price series of at least `min_length` bars."""
    values = np.asarray(prices, dtype=np.float64)
    if len(values) < min_length:
        raise DataError(
            f"{name} has {len(values)} bars; this model needs at least {min_length} to fit "
            "(window.lookback + window.horizon target values). Use a longer series or a "
            "shorter window."
        )
    if not (np.all(np.isfinite(values)) and np.all(values > 0)):
        raise DataError(f"{name} must hold finite prices > 0")

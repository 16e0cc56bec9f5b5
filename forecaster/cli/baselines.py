"""The baselines of the registry, configured from a run's config: one place for `train` and
`backtest`."""

from __future__ import annotations

from collections.abc import Sequence

from forecaster.data.splits import WindowConfig
from forecaster.evaluation.probabilistic import scoring_levels
from forecaster.models import PROBABILISTIC_BASELINES, create
from forecaster.models.base import Forecaster


def baseline(name: str, window: WindowConfig, quantiles: Sequence[float], seed: int) -> Forecaster:
    """Baseline `name` for `window`. Probabilistic baselines forecast the reported `quantiles`
    (`model.quantiles`) and the dense grid the CRPS is integrated on; GARCH's simulations are
    seeded by the run's `seed`."""
    params: dict = {"horizon": window.horizon}
    if name in ("ridge", "rw_normal"):
        params["lookback"] = window.lookback
    if name in PROBABILISTIC_BASELINES:
        params["quantiles"] = scoring_levels(quantiles)
    if name == "garch_t":
        params["seed"] = seed
    return create(name, **params)

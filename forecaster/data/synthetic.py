"""Deterministic synthetic daily prices: geometric Brownian motion with Markov regime switching.

A hidden Markov chain picks one of three regimes each business day:

- calm bull: +12 %/year drift, 12 % annual volatility;
- calm bear: -8 %/year drift, 18 % annual volatility;
- turbulent: -25 %/year drift, 40 % annual volatility, with higher trading volume.

Regimes are sticky (a calm regime lasts about 100 days on average, a turbulent one about 25),
so the series shows trends and volatility clusters that a forecaster can learn, unlike plain
GBM. Close prices follow ``log P_t = log P_{t-1} + (mu - sigma^2 / 2) + sigma * z_t`` with
daily mu and sigma of the current regime. Prices are rounded to 4 decimals so the CSV written
by `write_csv` round-trips exactly.

Regenerate the bundled file with ``python -m forecaster.data.synthetic [path]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.paths import bundled

TRADING_DAYS = 252
# Annual drift and volatility per regime: calm bull, calm bear, turbulent.
DRIFT = np.array([0.12, -0.08, -0.25])
VOLATILITY = np.array([0.12, 0.18, 0.40])
# TRANSITION[i, j] = P(regime j tomorrow | regime i today); a large diagonal makes regimes sticky.
TRANSITION = np.array(
    [
        [0.990, 0.007, 0.003],
        [0.008, 0.990, 0.002],
        [0.020, 0.020, 0.960],
    ]
)
COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]


def generate_prices(
    n_days: int = 2520, seed: int = 0, start: str = "2010-01-04", initial_price: float = 100.0
) -> pd.DataFrame:
    """Return `n_days` business days of Yahoo-style OHLCV data; same seed, same frame."""
    if n_days < 1:
        raise ValueError(f"n_days must be >= 1, got {n_days}")
    if initial_price <= 0:
        raise ValueError(f"initial_price must be > 0, got {initial_price}")
    rng = np.random.default_rng(seed)

    regimes = np.empty(n_days, dtype=int)
    regimes[0] = 0
    for t in range(1, n_days):
        regimes[t] = rng.choice(3, p=TRANSITION[regimes[t - 1]])

    mu = DRIFT[regimes] / TRADING_DAYS
    sigma = VOLATILITY[regimes] / np.sqrt(TRADING_DAYS)
    log_returns = mu - sigma**2 / 2 + sigma * rng.standard_normal(n_days)
    close = initial_price * np.exp(np.cumsum(log_returns))

    # Each day opens near the previous close (a small overnight gap); the first at initial_price.
    previous_close = np.concatenate([[initial_price], close[:-1]])
    open_ = previous_close * np.exp(0.2 * sigma * rng.standard_normal(n_days))
    # The intraday range extends beyond open and close by a half-normal amount.
    high = np.maximum(open_, close) * np.exp(0.5 * sigma * np.abs(rng.standard_normal(n_days)))
    low = np.minimum(open_, close) * np.exp(-0.5 * sigma * np.abs(rng.standard_normal(n_days)))
    # Volume rises with volatility, as it does in real markets.
    volume = 1e6 * (sigma / sigma.min()) * rng.lognormal(0.0, 0.25, n_days)

    # Rounding is monotone, so Low <= Open, Close <= High still holds afterwards.
    close = close.round(4)
    return pd.DataFrame(
        {
            "Date": pd.bdate_range(start=start, periods=n_days),
            "Open": open_.round(4),
            "High": high.round(4),
            "Low": low.round(4),
            "Close": close,
            "Adj Close": close,
            "Volume": volume.round().astype(np.int64),
        },
        columns=COLUMNS,
    )


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` as the plain CSV `load_prices` reads (dates as YYYY-MM-DD); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Default float formatting writes the shortest repr, which reads back to the same float.
    frame.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else bundled("synthetic.csv"))
    print(f"wrote {write_csv(generate_prices(), target)}")

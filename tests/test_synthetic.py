"""Specification of `forecaster.synthetic`: a deterministic Yahoo-style price generator."""

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from forecaster.data.io import load_prices
from forecaster.data.synthetic import generate_prices, write_csv

COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]


def test_frame_has_yahoo_columns_and_business_days():
    frame = generate_prices(n_days=10, start="2020-01-01")
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 10
    assert pd.api.types.is_datetime64_any_dtype(frame["Date"])
    assert frame["Volume"].dtype == np.int64
    # 2020-01-04/05 are a weekend, so 10 business days end on 2020-01-14.
    assert frame["Date"].iloc[0] == pd.Timestamp("2020-01-01")
    assert frame["Date"].iloc[-1] == pd.Timestamp("2020-01-14")
    assert (frame["Date"].dt.dayofweek < 5).all()


def test_same_seed_gives_identical_frame():
    pd.testing.assert_frame_equal(generate_prices(seed=7), generate_prices(seed=7))


def test_different_seeds_give_different_prices():
    a, b = generate_prices(n_days=50, seed=1), generate_prices(n_days=50, seed=2)
    assert not np.allclose(a["Close"], b["Close"])
    pd.testing.assert_series_equal(a["Date"], b["Date"])


def test_ohlc_is_consistent():
    frame = generate_prices(n_days=2000, seed=3)
    assert (frame["Low"] <= frame[["Open", "Close"]].min(axis=1)).all()
    assert (frame["High"] >= frame[["Open", "Close"]].max(axis=1)).all()
    assert (frame["Low"] > 0).all()
    assert (frame["Volume"] > 0).all()
    pd.testing.assert_series_equal(frame["Adj Close"], frame["Close"], check_names=False)


def test_prices_start_near_initial_price_and_show_volatility_regimes():
    frame = generate_prices(initial_price=50.0)
    assert frame["Open"].iloc[0] == pytest.approx(50.0, rel=0.01)
    log_returns = np.diff(np.log(frame["Close"].to_numpy()))
    # Annualised volatility lies between the calm (12-18 %) and turbulent (40 %) regimes ...
    assert 0.12 < log_returns.std() * np.sqrt(252) < 0.40
    # ... and volatility clusters: |returns| are autocorrelated, unlike in plain GBM.
    magnitude = np.abs(log_returns)
    assert np.corrcoef(magnitude[:-1], magnitude[1:])[0, 1] > 0.05


@pytest.mark.parametrize("kwargs", [{"n_days": 0}, {"initial_price": 0.0}])
def test_invalid_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match="must be"):
        generate_prices(**kwargs)


def test_write_csv_round_trips_through_load_prices(tmp_path):
    frame = generate_prices(n_days=30, seed=5)
    path = write_csv(frame, tmp_path / "nested" / "prices.csv")
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert path.read_text().splitlines()[1].startswith(frame["Date"].iloc[0].strftime("%Y-%m-%d,"))
    series = load_prices(path)
    assert series.price_column == "Adj Close"
    assert series.dropped_rows == 0
    np.testing.assert_array_equal(series.prices.to_numpy(), frame["Adj Close"].to_numpy())
    np.testing.assert_array_equal(series.prices.index.to_numpy(), frame["Date"].to_numpy())


def test_bundled_synthetic_csv_matches_the_generator(tmp_path):
    fresh = write_csv(generate_prices(), tmp_path / "synthetic.csv")
    bundled = REPO_ROOT / "data" / "synthetic.csv"
    assert bundled.read_bytes() == fresh.read_bytes(), (
        "data/synthetic.csv is stale; regenerate it with `python -m forecaster.data.synthetic`"
    )

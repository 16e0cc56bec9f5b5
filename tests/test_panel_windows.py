"""A panel is split by date, scaled per series on its training part, and cut into windows that
carry their ticker; other tickers are aligned by date without look-ahead. The tests perturb
the future and require the past to stay bit-identical."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.data import WindowConfig
from forecaster.data.io import PriceSeries
from forecaster.data.panel import Panel, PanelSplit, panel_split
from forecaster.data.panel_windows import (
    align_tickers,
    aligned_log_returns,
    make_panel_windows,
)
from forecaster.data.windows import Scaler, make_windows, target_series
from forecaster.errors import ConfigError, DataError

WINDOW = WindowConfig(lookback=10, horizon=3, val_fraction=0.2, test_fraction=0.2)


def series(ticker: str, prices: pd.Series) -> PriceSeries:
    return PriceSeries(prices, Path(f"/{ticker}.csv"), "date", "price", "0", 0, ticker=ticker)


def walk(dates: pd.DatetimeIndex, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates)))), index=dates)


def sample_panel() -> Panel:
    """Three calendars: US business days, an FX calendar (no 1 May, one Saturday fixing), and a
    stock that lists later."""
    us = pd.bdate_range("2020-01-01", periods=200)
    fx = us.drop(pd.Timestamp("2020-05-01")).union([pd.Timestamp("2020-03-07")])
    late = us[40:]
    return Panel(
        (
            series("US", walk(us, 0)),
            series("FX", walk(fx, 1)),
            series("LATE", walk(late, 2)),
        )
    )


def perturbed_after(panel: Panel, cut: pd.Timestamp, *, inclusive: bool = False) -> Panel:
    """The panel with every price dated after `cut` (or on it, if `inclusive`) replaced."""
    rng = np.random.default_rng(99)
    out = []
    for s in panel.series:
        p = s.prices.copy()
        later = p.index >= cut if inclusive else p.index > cut
        p[later] = rng.uniform(1, 1000, later.sum())
        out.append(series(s.ticker, p))
    return Panel(tuple(out))


# -- one calendar cut --------------------------------------------------------------------------


def test_the_cut_is_one_pair_of_dates_for_every_series():
    panel = sample_panel()
    split = panel_split(panel, WINDOW)
    calendar = panel.calendar
    n = len(calendar)
    assert split == PanelSplit(calendar[round(n * 0.6) - 1], calendar[round(n * 0.8) - 1])
    for s in panel.series:
        part = split.of(s.prices)
        assert s.prices.index[part.train_stop - 1] <= split.train_end
        assert s.prices.index[part.train_stop] > split.train_end
        assert s.prices.index[part.val_stop - 1] <= split.val_end < s.prices.index[part.val_stop]


def test_no_series_trains_on_a_date_another_validates_or_tests_on():
    panel = sample_panel()
    dataset = make_panel_windows(panel, panel_split(panel, WINDOW), lookback=10, horizon=3)
    dates = {
        name: [
            data.prices.index.to_numpy()[
                getattr(data, name).origin_index[:, None] + np.arange(1, 4)
            ]
            for data in dataset.datasets.values()
        ]
        for name in ("train", "val", "test")
    }
    last_train_target = max(d.max() for d in dates["train"])
    first_held_out_target = min(d.min() for d in dates["val"] + dates["test"])
    assert last_train_target <= dataset.split.train_end < first_held_out_target
    assert max(d.max() for d in dates["val"]) <= dataset.split.val_end
    assert min(d.min() for d in dates["test"]) > dataset.split.val_end


def test_perturbing_any_price_after_the_cut_leaves_training_windows_and_scalers_unchanged():
    panel = sample_panel()
    split = panel_split(panel, WINDOW)
    before = make_panel_windows(panel, split, lookback=10, horizon=3)
    after = make_panel_windows(
        perturbed_after(panel, split.train_end), split, lookback=10, horizon=3
    )
    assert before.scalers == after.scalers
    a, b = before.part("train"), after.part("train")
    for field in ("inputs", "targets", "origin_index", "ticker_index", "origin_prices"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    # The perturbation did reach the held-out windows: the check above could fail.
    assert not np.array_equal(before.part("test").targets, after.part("test").targets)


def test_each_series_is_scaled_on_its_own_training_part_only():
    panel = sample_panel()
    split = panel_split(panel, WINDOW)
    dataset = make_panel_windows(panel, split, lookback=10, horizon=3)
    for s in panel.series:
        returns = target_series(s.prices.loc[: split.train_end], "log_return").to_numpy()
        assert dataset.scalers[s.ticker] == Scaler.fit(returns)
    assert len(set(dataset.scalers.values())) == 3


def test_stacked_windows_carry_their_ticker_and_equal_the_single_series_windows():
    panel = sample_panel()
    split = panel_split(panel, WINDOW)
    dataset = make_panel_windows(panel, split, lookback=10, horizon=3, stride=2)
    assert dataset.tickers == ("US", "FX", "LATE")
    for name in ("train", "val", "test"):
        stacked = dataset.part(name)
        assert stacked.ticker_index.dtype == np.int32
        for k, s in enumerate(panel.series):
            alone = getattr(
                make_windows(s.prices, split.of(s.prices), lookback=10, horizon=3, stride=2),
                name,
            )
            mine = stacked.ticker_index == k
            assert np.array_equal(stacked.inputs[mine], alone.inputs)
            assert np.array_equal(stacked.targets[mine], alone.targets)
            assert stacked.origin_dates[mine].equals(alone.origin_dates)


def test_explicit_cut_dates_and_their_errors():
    panel = sample_panel()
    split = panel_split(panel, WINDOW, train_end="2020-06-30", val_end="2020-08-31")
    assert split == PanelSplit(pd.Timestamp("2020-06-30"), pd.Timestamp("2020-08-31"))
    with pytest.raises(ConfigError, match="must come before"):
        panel_split(panel, WINDOW, train_end="2020-08-31", val_end="2020-06-30")
    with pytest.raises(ConfigError, match="give both"):
        panel_split(panel, WINDOW, train_end="2020-06-30")


def test_a_series_without_a_window_in_some_part_is_named_with_the_fix():
    panel = sample_panel()
    # LATE starts 2020-02-26: ten training bars before 2020-03-10 are too few for 10 + 3.
    with pytest.raises(DataError) as info:
        panel_split(panel, WINDOW, train_end="2020-03-10", val_end="2020-08-31")
    message = str(info.value)
    assert "ticker 'LATE'" in message and "data.tickers=[...]" in message
    assert "need at least 14, 3 and 3" in message


# -- cross-ticker alignment --------------------------------------------------------------------


def test_aligned_returns_use_the_last_price_before_each_date():
    dates = pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07"])
    a = pd.Series([100.0, 110.0, 121.0], index=dates[[0, 1, 3]])  # no bar on 01-06
    panel = Panel((series("A", a),))
    same = aligned_log_returns(panel, dates, same_date=True)["A"].to_numpy()
    np.testing.assert_allclose(same, [np.nan, np.log(1.1), 0.0, np.log(1.1)])
    strict = aligned_log_returns(panel, dates)["A"].to_numpy()
    np.testing.assert_allclose(strict, [np.nan, np.nan, np.log(1.1), 0.0])


@pytest.mark.parametrize("same_date", [False, True])
def test_an_aligned_return_never_uses_a_price_dated_after_its_date(same_date):
    panel = sample_panel()
    dates = panel.calendar
    full = aligned_log_returns(panel, dates, same_date=same_date)
    for cut in dates[[30, 77, 150]]:
        # Strict alignment must not even use prices dated on the cut itself.
        changed = perturbed_after(panel, cut, inclusive=not same_date)
        moved = aligned_log_returns(changed, dates, same_date=same_date)
        pd.testing.assert_frame_equal(full.loc[:cut], moved.loc[:cut])
        assert not full.loc[cut:].iloc[2:].equals(moved.loc[cut:].iloc[2:])


def test_cross_ticker_inputs_at_an_origin_are_unchanged_when_later_prices_change():
    panel = sample_panel()
    split = panel_split(panel, WINDOW)
    dataset = make_panel_windows(panel, split, lookback=10, horizon=3)
    test = dataset.part("test")
    inputs = align_tickers(panel, dataset).windows(test)
    assert inputs.shape == (len(test), 10, 3) and inputs.dtype == np.float32
    for row in [0, len(test) // 2, len(test) - 1]:
        origin = test.origin_dates[row]
        # Every ticker's prices from the origin's date on are replaced: strict alignment uses
        # other tickers' prices dated before each input bar only.
        changed = perturbed_after(panel, origin, inclusive=True)
        again = make_panel_windows(changed, split, lookback=10, horizon=3)
        moved = align_tickers(changed, again).windows(again.part("test"), np.array([row]))
        assert np.array_equal(inputs[row], moved[0]), origin
    # A ticker's own column is its previous bar's scaled return, lagged by the strict rule.
    us = dataset.datasets["US"]
    first = test.ticker_index == 0
    np.testing.assert_allclose(
        inputs[first][:, 1:, 0], us.test.inputs[:, :-1, 0], rtol=1e-5, atol=1e-5
    )


def test_cross_ticker_windows_follow_each_window_s_own_series_and_dates():
    panel = sample_panel()
    split = panel_split(panel, WINDOW)
    dataset = make_panel_windows(panel, split, lookback=10, horizon=3)
    train = dataset.part("train")
    cross = align_tickers(panel, dataset, same_date=True)
    batch = np.array([0, len(train) // 2, len(train) - 1])
    for row, window in zip(batch, cross.windows(train, batch), strict=True):
        ticker = dataset.tickers[train.ticker_index[row]]
        prices = panel.prices(ticker)
        dates = prices.index[train.origin_index[row] - 9 : train.origin_index[row] + 1]
        aligned = aligned_log_returns(panel, prices.index, same_date=True).loc[dates]
        own = aligned[ticker].to_numpy()
        scaler = dataset.scalers[ticker]  # the same training dates give the same scaler
        column = window[:, train.ticker_index[row]]
        np.testing.assert_allclose(column, scaler.transform(own), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(column, train.inputs[row, :, 0], rtol=1e-5, atol=1e-5)

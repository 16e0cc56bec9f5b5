"""Specification of forecaster.data.windows and .splits: time split, train-only scaler,
leak-free windows."""

import numpy as np
import pandas as pd
import pytest

from forecaster.data.windows import (
    Dataset,
    Scaler,
    WindowSet,
    encoder_inputs,
    forecast_to_prices,
    make_dataset,
    target_series,
    window_inputs,
)
from forecaster.errors import DataError
from forecaster.evaluation.metrics import mase_scale

CONFIG = dict(lookback=8, horizon=3, val_fraction=0.2, test_fraction=0.2)


def make_prices(n: int = 120, seed: int = 0) -> pd.Series:
    """A positive random walk on business days."""
    rng = np.random.default_rng(seed)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return pd.Series(values, index=pd.bdate_range("2020-01-01", periods=n), name="close")


def target_dates(prices: pd.Series, ws: WindowSet, horizon: int) -> np.ndarray:
    """[n, horizon] dates of each window's targets."""
    return prices.index.to_numpy()[ws.origin_index[:, None] + np.arange(1, horizon + 1)]


def windows_of(ds: Dataset):
    return {"train": ds.train, "val": ds.val, "test": ds.test}


# --- hand-computed content --------------------------------------------------------------------


def test_price_windows_on_prices_1_to_30_match_hand_computed_values():
    prices = pd.Series(
        np.arange(1.0, 31.0), index=pd.date_range("2024-01-01", periods=30, freq="D")
    )
    ds = make_dataset(
        prices, lookback=3, horizon=2, val_fraction=0.2, test_fraction=0.2, target="price"
    )

    # 30 bars -> train bars 0..17 (prices 1..18), val 18..23, test 24..29.
    assert ds.split.train_end == pd.Timestamp("2024-01-18")
    assert ds.split.val_end == pd.Timestamp("2024-01-24")
    assert ds.scaler == Scaler(mean=9.5, std=np.sqrt((18**2 - 1) / 12))  # mean/std of 1..18
    assert mase_scale(ds.split.train(prices)) == 1.0  # prices 1..18 move by 1 a day

    def scaled(values):
        return ((np.array(values, dtype=np.float64) - 9.5) / ds.scaler.std).astype(np.float32)

    # Train origins 2..15: inputs inside train and targets inside train (last target = 18).
    assert len(ds.train) == 14
    np.testing.assert_array_equal(ds.train.origin_index, np.arange(2, 16))
    np.testing.assert_array_equal(ds.train.inputs[0, :, 0], scaled([1, 2, 3]))
    np.testing.assert_array_equal(ds.train.targets[0], scaled([4, 5]))
    np.testing.assert_array_equal(ds.train.inputs[-1, :, 0], scaled([14, 15, 16]))
    np.testing.assert_array_equal(ds.train.targets[-1], scaled([17, 18]))
    assert ds.train.origin_dates[0] == pd.Timestamp("2024-01-03")

    # Val origins 17..21: first target is the first val bar (19), inputs reach back into train.
    np.testing.assert_array_equal(ds.val.origin_index, np.arange(17, 22))
    np.testing.assert_array_equal(ds.val.inputs[0, :, 0], scaled([16, 17, 18]))
    np.testing.assert_array_equal(ds.val.targets[0], scaled([19, 20]))
    np.testing.assert_array_equal(ds.val.targets[-1], scaled([23, 24]))

    # Test origins 23..27.
    np.testing.assert_array_equal(ds.test.origin_index, np.arange(23, 28))
    np.testing.assert_array_equal(ds.test.targets[0], scaled([25, 26]))
    np.testing.assert_array_equal(ds.test.targets[-1], scaled([29, 30]))
    np.testing.assert_array_equal(ds.test.origin_prices, [24, 25, 26, 27, 28])
    np.testing.assert_array_equal(ds.test.actual_prices[0], [25, 26])
    assert list(ds.test.origin_dates) == list(pd.date_range("2024-01-24", periods=5, freq="D"))

    assert ds.train.inputs.dtype == ds.train.targets.dtype == np.float32
    assert ds.train.inputs.shape == (14, 3, 1) and ds.train.targets.shape == (14, 2)


def test_log_return_windows_match_hand_computed_values():
    p = np.array([100.0, 110, 99, 108.9, 103.455, 113.8005, 119.490525, 107.5, 112.0, 106.0])
    prices = pd.Series(p, index=pd.date_range("2024-03-01", periods=10, freq="D"))
    ds = make_dataset(prices, lookback=2, horizon=1, val_fraction=0.2, test_fraction=0.2)

    # 9 returns r_1..r_9 (dated like p_1..p_9) -> train r_1..r_5, val r_6..r_7, test r_8..r_9.
    r = np.log(p[1:] / p[:-1])
    assert target_series(prices, "log_return").index[0] == pd.Timestamp("2024-03-02")
    assert ds.split.train_end == pd.Timestamp("2024-03-06")  # date of p_5
    assert ds.split.val_end == pd.Timestamp("2024-03-08")  # date of p_7
    assert ds.scaler.mean == pytest.approx(np.mean(r[:5]), rel=1e-12)
    assert ds.scaler.std == pytest.approx(np.std(r[:5]), rel=1e-12)
    assert mase_scale(ds.split.train(prices)) == pytest.approx(
        np.mean(np.abs(np.diff(p[:6]))), rel=1e-12
    )

    def scaled(values):
        return ((np.asarray(values) - ds.scaler.mean) / ds.scaler.std).astype(np.float32)

    # First train window: inputs r_1, r_2 (origin p_2), target r_3.
    np.testing.assert_array_equal(ds.train.origin_index, [2, 3, 4])
    np.testing.assert_array_equal(
        ds.train.inputs[0, :, 0], scaled([np.log(110 / 100), np.log(99 / 110)])
    )
    np.testing.assert_array_equal(ds.train.targets[0], scaled([np.log(108.9 / 99)]))
    np.testing.assert_array_equal(ds.train.origin_prices, [99, 108.9, 103.455])
    np.testing.assert_array_equal(ds.train.actual_prices[:, 0], [108.9, 103.455, 113.8005])
    assert ds.train.origin_dates[0] == pd.Timestamp("2024-03-03")

    np.testing.assert_array_equal(ds.val.origin_index, [5, 6])
    np.testing.assert_array_equal(ds.val.targets[:, 0], scaled(r[5:7]))
    np.testing.assert_array_equal(ds.test.origin_index, [7, 8])
    np.testing.assert_array_equal(
        ds.test.inputs[-1, :, 0], scaled([np.log(107.5 / 119.490525), np.log(112.0 / 107.5)])
    )
    np.testing.assert_array_equal(ds.test.actual_prices, [[112.0], [106.0]])


# --- no look-ahead ----------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["log_return", "price"])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_changing_prices_after_an_origin_leaves_that_windows_inputs_unchanged(target, split):
    prices = make_prices()
    before = make_dataset(prices, target=target, **CONFIG)
    ws = windows_of(before)[split]
    i = len(ws) // 2
    origin = ws.origin_index[i]

    future = prices.copy()
    future.iloc[origin + 1 :] *= np.random.default_rng(1).uniform(
        0.5, 2.0, len(prices) - origin - 1
    )
    after = make_dataset(future, target=target, **CONFIG)
    ws_after = windows_of(after)[split]

    assert ws_after.origin_index[i] == origin
    assert ws_after.origin_prices[i] == ws.origin_prices[i]
    assert ws_after.origin_dates[i] == ws.origin_dates[i]
    # The window's raw target values are the same past values. (For a train window the scaler
    # may change, since it is fitted on the whole training part, so compare unscaled values.)
    y = target_series(prices, target).to_numpy()
    offset = len(prices) - len(y)
    expected = y[origin - offset - CONFIG["lookback"] + 1 : origin - offset + 1]
    for ds, w in ((before, ws), (after, ws_after)):
        np.testing.assert_allclose(
            ds.scaler.inverse_transform(w.inputs[i, :, 0]), expected, rtol=1e-5, atol=1e-7
        )
    if split != "train":  # the future is outside train, so the scaled inputs are bit-identical
        np.testing.assert_array_equal(ws_after.inputs[i], ws.inputs[i])
    assert not np.allclose(ws_after.actual_prices[i], ws.actual_prices[i])  # the change was real


@pytest.mark.parametrize("target", ["log_return", "price"])
def test_changing_any_val_or_test_price_leaves_scaler_and_train_windows_unchanged(target):
    prices = make_prices()
    base = make_dataset(prices, target=target, **CONFIG)
    later = np.flatnonzero(prices.index > base.split.train_end)
    assert len(later) > 40

    for pos in later:
        changed = prices.copy()
        changed.iloc[pos] *= 3.0
        ds = make_dataset(changed, target=target, **CONFIG)
        assert ds.scaler == base.scaler
        assert mase_scale(ds.split.train(changed)) == mase_scale(base.split.train(prices))
        assert ds.split.train_end == base.split.train_end
        np.testing.assert_array_equal(ds.train.inputs, base.train.inputs)
        np.testing.assert_array_equal(ds.train.targets, base.train.targets)
        np.testing.assert_array_equal(ds.train.actual_prices, base.train.actual_prices)


@pytest.mark.parametrize("target", ["log_return", "price"])
def test_splits_are_chronological_and_disjoint_in_targets(target):
    prices = make_prices()
    ds = make_dataset(prices, target=target, stride=2, **CONFIG)
    h = ds.horizon
    train, val, test = (target_dates(prices, w, h) for w in (ds.train, ds.val, ds.test))

    assert train.max() <= ds.split.train_end < val.min()
    assert val.max() <= ds.split.val_end < test.min()
    assert test.max() == prices.index[-1]  # the test part is used to the end
    # Every input bar of a window is at or before its origin.
    for w in (ds.train, ds.val, ds.test):
        assert (w.origin_dates < target_dates(prices, w, h)[:, 0]).all()
        assert w.origin_dates.is_monotonic_increasing
    # Val and test start at the first origin whose targets lie fully inside them.
    assert val[0, 0] == prices.index[prices.index > ds.split.train_end][0]
    assert test[0, 0] == prices.index[prices.index > ds.split.val_end][0]


# --- stride and views -------------------------------------------------------------------------


def test_stride_thins_train_windows_only():
    prices = make_prices()
    dense = make_dataset(prices, stride=1, **CONFIG)
    thin = make_dataset(prices, stride=3, **CONFIG)

    assert len(thin.train) == -(-len(dense.train) // 3)
    np.testing.assert_array_equal(thin.train.inputs, dense.train.inputs[::3])
    np.testing.assert_array_equal(thin.train.targets, dense.train.targets[::3])
    np.testing.assert_array_equal(thin.train.origin_index, dense.train.origin_index[::3])
    for split in ("val", "test"):
        np.testing.assert_array_equal(
            windows_of(thin)[split].inputs, windows_of(dense)[split].inputs
        )
        np.testing.assert_array_equal(np.diff(windows_of(thin)[split].origin_index), 1)


def test_windows_are_views_of_one_scaled_array():
    ds = make_dataset(make_prices(), stride=2, **CONFIG)
    for w in (ds.train, ds.val, ds.test):
        assert not w.inputs.flags.owndata and not w.targets.flags.owndata
        assert np.shares_memory(w.inputs, w.targets)
    # Val inputs reach back into train, test inputs into val: the same memory, scaled once.
    assert np.shares_memory(ds.val.inputs, ds.train.targets)
    assert np.shares_memory(ds.test.inputs, ds.val.targets)


# --- back to prices and serving ---------------------------------------------------------------


@pytest.mark.parametrize("target", ["log_return", "price"])
def test_forecast_to_prices_inverts_the_true_scaled_targets(target):
    prices = make_prices()
    ds = make_dataset(prices, target=target, **CONFIG)
    y = target_series(prices, target).to_numpy()
    offset = len(prices) - len(y)

    for w in (ds.train, ds.val, ds.test):
        steps = w.origin_index[:, None] - offset + np.arange(1, ds.horizon + 1)
        exact = ds.scaler.transform(y[steps])  # float64 scaled targets
        np.testing.assert_array_equal(w.targets, exact.astype(np.float32))
        np.testing.assert_allclose(
            forecast_to_prices(exact, w.origin_prices, ds.scaler, target),
            w.actual_prices,
            rtol=1e-9,
        )
        # The stored float32 targets round-trip to float32 precision.
        np.testing.assert_allclose(
            forecast_to_prices(w.targets, w.origin_prices, ds.scaler, target),
            w.actual_prices,
            rtol=1e-5,
        )


def test_forecast_to_prices_compounds_log_returns_from_the_origin():
    scaler = Scaler(mean=0.0, std=1.0)
    out = forecast_to_prices(
        np.array([[np.log(1.1), np.log(0.5)]]), np.array([100.0]), scaler, "log_return"
    )
    np.testing.assert_allclose(out, [[110.0, 55.0]], rtol=1e-12)


@pytest.mark.parametrize("target", ["log_return", "price"])
def test_encoder_inputs_equal_the_last_window_inputs_built_from_the_same_data(target):
    prices = make_prices()
    ds = make_dataset(prices, target=target, **CONFIG)
    origin = ds.test.origin_index[-1]

    x = encoder_inputs(
        prices.iloc[: origin + 1], lookback=ds.lookback, scaler=ds.scaler, target=target
    )
    assert x.shape == (1, ds.lookback, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x, ds.test.inputs[-1:])


@pytest.mark.parametrize("target", ["log_return", "price"])
def test_window_inputs_at_any_origins_equal_the_windows_cut_for_training(target):
    """What a model is fed to forecast equals what it was trained and validated on."""
    prices = make_prices()
    ds = make_dataset(prices, target=target, **CONFIG)
    for w in (ds.train, ds.val, ds.test):
        got = window_inputs(
            prices, w.origin_index, lookback=ds.lookback, scaler=ds.scaler, target=target
        )
        np.testing.assert_array_equal(got, w.inputs)


def test_window_inputs_refuse_an_origin_without_a_full_window():
    prices = make_prices(30)
    scaler = Scaler(mean=0.0, std=1.0)
    kwargs = dict(lookback=8, scaler=scaler, target="log_return")
    assert window_inputs(prices, np.array([8, 29]), **kwargs).shape == (2, 8, 1)
    with pytest.raises(DataError, match="first possible origin is position 8"):
        window_inputs(prices, np.array([7]), **kwargs)
    with pytest.raises(DataError, match="must lie inside the series"):
        window_inputs(prices, np.array([30]), **kwargs)


def test_encoder_inputs_on_a_too_short_series_say_how_many_bars_are_needed():
    prices = make_prices(8)
    scaler = Scaler(mean=0.0, std=1.0)
    with pytest.raises(DataError, match=r"8 bars available, need at least 9 bars"):
        encoder_inputs(prices, lookback=8, scaler=scaler, target="log_return")
    with pytest.raises(DataError, match=r"8 bars available, need at least 10 bars"):
        encoder_inputs(prices, lookback=10, scaler=scaler, target="price")
    assert encoder_inputs(prices, lookback=8, scaler=scaler, target="price").shape == (1, 8, 1)


# --- errors -----------------------------------------------------------------------------------


def test_too_short_series_names_bar_counts_and_config_keys():
    # lookback 3 + horizon 2, halves/quarters: 10 target values is the minimum (9 rounds train to
    # 4 bars), so 9 prices fail for target=price and 10 prices fail for log_return (9 returns).
    kwargs = dict(lookback=3, horizon=2, val_fraction=0.25, test_fraction=0.25)
    make_dataset(make_prices(10), target="price", **kwargs)
    make_dataset(make_prices(11), target="log_return", **kwargs)

    with pytest.raises(DataError) as err:
        make_dataset(make_prices(9), target="price", **kwargs)
    message = str(err.value)
    assert "9 bars available, need at least 10 bars" in message
    assert "train 4 / val 3 / test 2" in message
    for key in ("window.lookback", "window.horizon", "window.val_fraction", "window.test_fraction"):
        assert key in message

    with pytest.raises(DataError, match=r"10 bars available, need at least 11 bars"):
        make_dataset(make_prices(10), target="log_return", **kwargs)


def test_constant_training_part_is_rejected():
    prices = pd.Series(
        np.r_[np.full(70, 50.0), np.linspace(50, 60, 30)],
        index=pd.bdate_range("2020-01-01", periods=100),
    )
    with pytest.raises(DataError, match="training part is constant"):
        make_dataset(prices, target="price", **CONFIG)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"lookback": 0}, "window.lookback"),
        ({"horizon": 0}, "window.horizon"),
        ({"stride": 0}, "window.stride"),
        ({"lookback": 2.5}, "window.lookback"),
        ({"val_fraction": 0.0}, "window.val_fraction"),
        ({"test_fraction": 1.0}, "window.test_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "window.val_fraction"),
        ({"target": "returns"}, "data.target"),
    ],
)
def test_bad_window_config_names_the_key(override, key):
    kwargs = {**CONFIG, **override}
    with pytest.raises(ValueError, match=key):
        make_dataset(make_prices(), **kwargs)


def test_unknown_target_lists_the_allowed_values():
    with pytest.raises(ValueError, match=r"data.target must be one of \('log_return', 'price'\)"):
        target_series(make_prices(), "returns")


def test_scaler_matches_scikit_learn_standard_scaler_on_the_training_part():
    """An independent reference for the train-only standardisation."""
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2020-01-01", periods=400)
    prices = pd.Series(50 * np.exp(np.cumsum(rng.normal(0, 0.02, 400))), index=dates)
    dataset = make_dataset(prices, lookback=10, horizon=3)
    returns = np.log(prices / prices.shift(1)).dropna()
    train_part = returns[returns.index <= dataset.split.train_end].to_numpy()[:, None]
    reference = StandardScaler().fit(train_part)
    assert dataset.scaler.mean == pytest.approx(reference.mean_[0], rel=1e-12)
    assert dataset.scaler.std == pytest.approx(reference.scale_[0], rel=1e-12)

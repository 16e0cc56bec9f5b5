"""LSTM state, proven: every way the project runs, feeds, carries and stores `(c, h)`.

A while_loop + TensorArray encoder, step-by-step execution with one sess.run per bar,
variable-length windows, feeding every layer's initial c and h, the (c, h) layout when packed;
plus streaming, warm start, the online forecaster and the state file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.data.windows import Scaler, pad_windows
from forecaster.errors import ConfigError, DataError
from forecaster.models.seq2seq import state as states
from forecaster.models.seq2seq.export import Preprocessing, export_model
from forecaster.models.seq2seq.network import Seq2SeqModel
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.models.seq2seq.state import LSTMState
from forecaster.serving import ExportedForecaster, OnlineForecaster, StreamState, forecast_frame

TOL = 1e-5


def random_inputs(batch=4, steps=12, features=1, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype(np.float32)


def assert_states_close(a, b, atol=TOL):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.c, y.c, atol=atol)
        np.testing.assert_allclose(x.h, y.h, atol=atol)


# -- 1. while_loop + TensorArray encoder ----------------------------------------------------


def test_while_loop_encoder_matches_fused_encoder_and_trains():
    inputs = random_inputs(batch=8, steps=15)
    targets = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    outputs = {}
    for encoder in ("fused", "while_loop"):
        spec = ModelSpec(horizon=4, num_units=6, num_layers=2, encoder=encoder)
        with Seq2SeqModel(spec, seed=5) as model:
            before = model.forecast(inputs)
            losses = [model.train_step(inputs, targets) for _ in range(10)]
            outputs[encoder] = (before, model.forecast(inputs), losses)
    (fused_before, fused_after, fused_losses) = outputs["fused"]
    (loop_before, loop_after, loop_losses) = outputs["while_loop"]
    np.testing.assert_allclose(loop_before.forecast, fused_before.forecast, atol=TOL)
    assert_states_close(loop_before.encoder_final_state, fused_before.encoder_final_state)
    # Gradients flow through the loop: training moves the weights, and both train alike.
    assert loop_losses[-1] < loop_losses[0]
    np.testing.assert_allclose(loop_losses, fused_losses, rtol=1e-4)
    np.testing.assert_allclose(loop_after.forecast, fused_after.forecast, atol=1e-4)


# -- 2. step-by-step execution --------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 3])
def test_step_by_step_equals_one_pass(num_layers):
    inputs = random_inputs(batch=3, steps=9, features=2)
    spec = ModelSpec(horizon=5, num_features=2, num_units=7, num_layers=num_layers)
    rng = np.random.default_rng(2)
    initial = tuple(
        LSTMState(*rng.normal(size=(2, 3, 7)).astype(np.float32)) for _ in range(num_layers)
    )
    with Seq2SeqModel(spec) as model:
        for fed in (None, initial):
            one_pass = model.forecast(inputs, initial_state=fed)
            stepped = model.forecast_step_by_step(inputs, initial_state=fed)
            np.testing.assert_allclose(stepped.forecast, one_pass.forecast, atol=TOL)
            assert_states_close(stepped.encoder_final_state, one_pass.encoder_final_state)
            assert_states_close(stepped.decoder_final_state, one_pass.decoder_final_state)


# -- 3. variable-length windows ---------------------------------------------------------------


def test_pad_windows_right_pads_and_reports_lengths():
    windows = [np.arange(3.0)[:, None], np.arange(5.0)[:, None], np.arange(1.0)[:, None]]
    padded, lengths = pad_windows(windows)
    assert padded.shape == (3, 5, 1) and padded.dtype == np.float32
    assert lengths.tolist() == [3, 5, 1]
    np.testing.assert_array_equal(padded[0, :, 0], [0, 1, 2, 0, 0])
    with pytest.raises(ConfigError, match="at least one window"):
        pad_windows([])


def test_variable_length_rows_end_at_their_own_last_step():
    """A series that starts later (shorter row) gets the state of its own last bar."""
    rng = np.random.default_rng(4)
    series = [rng.normal(size=(n, 1)).astype(np.float32) for n in (12, 7, 3)]
    padded, lengths = pad_windows(series)
    targets = rng.normal(size=(3, 4)).astype(np.float32)
    spec = ModelSpec(horizon=4, num_units=5, num_layers=2)
    with Seq2SeqModel(spec) as model:
        batched = model.forecast(padded, lengths=lengths)
        for row, one in enumerate(series):
            alone = model.forecast(one[None])
            np.testing.assert_allclose(batched.forecast[row], alone.forecast[0], atol=TOL)
            for layer in range(2):
                np.testing.assert_allclose(
                    batched.encoder_final_state[layer].h[row],
                    alone.encoder_final_state[layer].h[0],
                    atol=TOL,
                )
        # Padding values never reach the loss, and training with lengths works.
        t = model.tensors
        garbage = padded.copy()
        garbage[1, 7:] = 99.0
        garbage[2, 3:] = -99.0
        loss = [
            model.session.run(
                t.loss,
                {t.encoder_inputs: x, t.encoder_lengths: lengths, t.decoder_targets: targets},
            )
            for x in (padded, garbage)
        ]
        assert loss[0] == loss[1]
        first = model.train_step(garbage, targets, lengths=lengths)
        for _ in range(20):
            last = model.train_step(garbage, targets, lengths=lengths)
        assert last < first


# -- 4. feeding initial states (every layer's c and h, from numpy) ---------------------------


def test_initial_states_fed_per_layer_and_part_default_to_zeros():
    inputs = random_inputs(batch=5)
    spec = ModelSpec(horizon=3, num_units=4, num_layers=2)
    zeros = np.zeros((5, 4), np.float32)
    ones = np.ones((5, 4), np.float32)
    with Seq2SeqModel(spec) as model:
        default = model.encode(inputs)
        explicit = model.encode(inputs, initial_state=(LSTMState(zeros, zeros),) * 2)
        only_h1 = model.encode(inputs, initial_state=(None, LSTMState(None, ones)))
        only_c1 = model.encode(inputs, initial_state=(None, LSTMState(ones, None)))
    assert_states_close(default, explicit, atol=0)
    assert_states_close(default[:1], only_h1[:1], atol=0)  # layer 0 untouched
    assert not np.allclose(default[1].c, only_h1[1].c)
    assert not np.allclose(only_h1[1].c, only_c1[1].c)  # c and h are different doors


# -- 5. state layout: (c, h), and [c, h] when concatenated ------------------------------------


def test_packed_state_is_c_then_h_per_layer():
    c0, h0, c1, h1 = (np.full((1, 3), v, np.float32) for v in (1, 2, 3, 4))
    packed = states.pack((LSTMState(c0, h0), LSTMState(c1, h1)))
    np.testing.assert_array_equal(packed, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4])
    unpacked = states.unpack(packed, num_layers=2, num_units=3)
    np.testing.assert_array_equal(unpacked[0].c, c0)
    np.testing.assert_array_equal(unpacked[1].h, h1)
    with pytest.raises(ConfigError, match=r"needs 12 \(2 x 2 layers x 3 units"):
        states.unpack(packed[:-1], num_layers=2, num_units=3)


def test_named_arrays_round_trip():
    s = (LSTMState(np.ones((1, 2)), np.zeros((1, 2))),)
    arrays = states.to_arrays("encoder", s)
    assert sorted(arrays) == ["encoder_c_0", "encoder_h_0"]
    assert_states_close(states.from_arrays(arrays, "encoder"), s, atol=0)


# -- streaming ---------------------------------------------------------------------------------


def test_streaming_in_chunks_equals_one_pass_and_resetting_does_not():
    series = random_inputs(batch=2, steps=90, seed=9)
    spec = ModelSpec(horizon=3, num_units=8, num_layers=2)
    with Seq2SeqModel(spec) as model:
        one_pass = model.encode(series)
        carried, reset = None, None
        for start in range(0, 90, 25):  # uneven chunks: 25, 25, 25, 15
            chunk = series[:, start : start + 25]
            carried = model.encode(chunk, initial_state=carried)
            reset = model.encode(chunk)  # forgets everything before the chunk
    assert_states_close(carried, one_pass)
    # Why carrying matters: the reset state only knows the last 15 bars.
    assert np.abs(reset[1].c - one_pass[1].c).max() > 1e-3


# -- exported model: warm start, online updates, stateful serving -----------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    spec = ModelSpec(horizon=4, num_units=6, num_layers=2)
    preprocessing = Preprocessing(
        target="log_return",
        scaler_mean=0.0002,
        scaler_std=0.011,
        lookback=20,
        horizon=4,
        num_layers=2,
        num_units=6,
        price_column="Close",
        date_column="Date",
    )
    with Seq2SeqModel(spec, seed=3) as model:
        weights = model.get_weights()
    path = export_model(spec, weights, preprocessing, tmp_path_factory.mktemp("model"))
    forecaster = ExportedForecaster(path)
    yield forecaster
    forecaster.close()


@pytest.fixture
def prices():
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("2020-01-01", periods=80, name="date")
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 80))), index=dates, name="Close")


def encode_from_zeros(model: ExportedForecaster, prices: pd.Series):
    """One pass from a zero state over every return in `prices` (the reference)."""
    p = model.preprocessing
    returns = np.log(prices.to_numpy()[1:] / prices.to_numpy()[:-1])
    inputs = Scaler(p.scaler_mean, p.scaler_std).transform(returns).astype(np.float32)
    return model._run(inputs.reshape(1, -1, 1), None, prices)


def test_warm_start_equals_one_pass_over_the_longer_window(exported, prices):
    """State after bar 40 (from zeros over bars 20..40), carried over bars 41..79, equals one
    pass from zeros over bars 20..79."""
    cold = exported.forecast(prices.iloc[:41])  # encodes returns of bars 21..40
    state = StreamState(cold.encoder_final_state, float(prices.iloc[40]), prices.index[40])
    warm = OnlineForecaster(exported, state).update(prices.iloc[41:])
    reference = encode_from_zeros(exported, prices.iloc[20:])
    np.testing.assert_allclose(warm.prices, reference.prices, rtol=TOL)
    assert_states_close(warm.encoder_final_state, reference.encoder_final_state)
    # And it is not the same as forgetting: a cold start on the same end differs.
    assert not np.allclose(warm.prices, exported.forecast(prices).prices, rtol=1e-7)


def test_online_updates_bar_by_bar_equal_one_chunk(exported, prices):
    by_bar = OnlineForecaster.start(exported, prices.iloc[:30])
    by_chunk = OnlineForecaster.start(exported, prices.iloc[:30])
    for i in range(30, 80):
        last = by_bar.update(prices.iloc[i : i + 1])
    chunked = by_chunk.update(prices.iloc[30:])
    np.testing.assert_allclose(last.prices, chunked.prices, rtol=TOL)
    assert_states_close(by_bar.get_state().encoder_state, by_chunk.get_state().encoder_state)
    assert by_bar.get_state().last_date == prices.index[-1]
    assert last.dates[0] == prices.index[-1] + pd.offsets.BDay(1)


def test_online_state_survives_a_restart(exported, prices, tmp_path):
    online = OnlineForecaster.start(exported, prices.iloc[:50])
    online.update(prices.iloc[50:60])
    online.save(tmp_path / "state.npz")
    expected = online.update(prices.iloc[60:])
    restored = OnlineForecaster.load(exported, tmp_path / "state.npz")
    assert restored.get_state().last_date == prices.index[59]
    assert restored.get_state().last_price == prices.iloc[59]
    np.testing.assert_array_equal(restored.update(prices.iloc[60:]).prices, expected.prices)


def test_the_state_file_round_trips_every_array(tmp_path):
    """One format for a carried state: the online forecaster's and a run's final_states.npz."""
    rng = np.random.default_rng(5)

    def layers():
        return tuple(LSTMState(*rng.normal(size=(2, 1, 3)).astype(np.float32)) for _ in range(2))

    state = StreamState(layers(), 101.25, pd.Timestamp("2020-01-03"), decoder_state=layers())
    path = state.save(tmp_path / "state.npz")
    with np.load(path) as arrays:
        assert set(arrays.files) == {
            *(f"{m}_{p}_{k}" for m in ("encoder", "decoder") for p in "ch" for k in (0, 1)),
            "last_price",
            "last_date",
        }
    loaded = StreamState.load(path)
    assert_states_close(loaded.encoder_state, state.encoder_state, atol=0)
    assert_states_close(loaded.decoder_state, state.decoder_state, atol=0)
    assert (loaded.last_price, loaded.last_date) == (101.25, pd.Timestamp("2020-01-03"))

    undated = StreamState(state.encoder_state, 7.0, None).save(tmp_path / "undated.npz")
    loaded = StreamState.load(undated)
    assert loaded.last_date is None and loaded.decoder_state is None


def test_online_rejects_bars_it_has_already_seen(exported, prices):
    online = OnlineForecaster.start(exported, prices.iloc[:50])
    with pytest.raises(DataError, match="must come after the last bar seen"):
        online.update(prices.iloc[45:55])


def test_set_state_rewinds(exported, prices):
    online = OnlineForecaster.start(exported, prices.iloc[:50])
    saved = online.get_state()
    first = online.update(prices.iloc[50:55])
    online.update(prices.iloc[55:60])
    online.set_state(saved)
    np.testing.assert_array_equal(online.update(prices.iloc[50:55]).prices, first.prices)


def test_serving_protocol_round_trips_the_state(exported, prices):
    """Stateless call on history, then stateful calls with the returned state: the same as one
    online stream."""
    frame = prices.rename_axis("Date").reset_index()
    first = forecast_frame(exported, frame.iloc[:50])
    second = forecast_frame(exported, frame.iloc[49:], initial_state=first.packed_state())
    online = OnlineForecaster.start(exported, prices.iloc[:50])
    expected = online.update(prices.iloc[50:])
    np.testing.assert_allclose(second.prices, expected.prices, rtol=TOL)
    np.testing.assert_allclose(
        second.packed_state(), states.pack(expected.encoder_final_state), atol=TOL
    )
    assert list(second.to_frame().columns) == ["step", "date", "forecast"]

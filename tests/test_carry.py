"""Training with the encoder state carried (`train.carry=true`): the chunk layout, the state fed
at every chunk boundary, no look-ahead, exact resume, every output head, and the refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecaster.data.chunks import make_chunks
from forecaster.data.splits import WindowConfig
from forecaster.data.windows import target_series
from forecaster.errors import ConfigError, TrainingInterrupted
from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster
from forecaster.models.seq2seq.network import Seq2SeqModel
from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.training import TrainConfig, checkpoints
from forecaster.training.stopping import StopRequest


def gbm(n: int, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    returns = 0.01 * rng.standard_normal(n - 1)
    prices = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.Series(prices, index=pd.bdate_range("2000-01-03", periods=n))


def carry_model(**train) -> Seq2SeqForecaster:
    settings = dict(epochs=2, intra_op_threads=1, carry=True, chunk_length=7, streams=3)
    return Seq2SeqForecaster(
        window=WindowConfig(lookback=10, horizon=3),
        model=Seq2SeqConfig(num_units=5, num_layers=2, state="carry"),
        train=TrainConfig(**(settings | train)),
        seed=3,
    )


class Recorder:
    """Wraps `Seq2SeqModel.train_chunk`: records what every call was fed, then trains."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple[np.ndarray, np.ndarray, tuple]] = []
        original = Seq2SeqModel.train_chunk

        def train_chunk(network, inputs, targets, initial_state):
            self.calls.append((inputs.copy(), targets.copy(), initial_state))
            return original(network, inputs, targets, initial_state)

        monkeypatch.setattr(Seq2SeqModel, "train_chunk", train_chunk)


# -- the chunk layout --------------------------------------------------------------------------


def test_chunks_walk_each_stream_forward_and_stay_inside_the_training_part():
    y = np.arange(100, dtype=np.float32)  # each value is its own index
    chunks = make_chunks(y, 80, chunk_length=6, horizon=4, streams=3)
    assert (chunks.streams, chunks.chunks, len(chunks)) == (3, 4, 12)  # (80 - 4) // 18 = 4
    # The streams are contiguous and end where the last chunk's targets end at the cut.
    np.testing.assert_array_equal(chunks.starts, [4, 28, 52])
    for row in range(len(chunks)):
        first = chunks.chunk_start(row)
        np.testing.assert_array_equal(chunks.inputs[row, :, 0], np.arange(first, first + 6))
        np.testing.assert_array_equal(chunks.targets[row], np.arange(first + 6, first + 10))
    # Row b * streams + k is chunk b of stream k: batch b + 1 continues batch b, stream by stream.
    batch = chunks.inputs.reshape(4, 3, 6)
    np.testing.assert_array_equal(batch[1:, :, 0], batch[:-1, :, -1] + 1)
    assert chunks.targets.max() == 79  # the last training bar; nothing after the cut


def test_a_training_part_too_short_for_one_chunk_per_stream_says_what_to_lower():
    message = (
        r"train.carry=true needs at least one chunk per stream: the training part has 40 bars, "
        r"35 before its last horizon, fewer than train.streams \(8\) x train.chunk_length \(20\)"
    )
    with pytest.raises(ConfigError, match=message):
        make_chunks(np.zeros(60), 40, chunk_length=20, horizon=5, streams=8)


# -- the state at every chunk boundary ----------------------------------------------------------


def test_the_state_fed_at_each_chunk_boundary_is_one_pass_over_every_bar_before_it(monkeypatch):
    """With weights that do not move (a learning rate far below float32's resolution), the state
    each chunk starts from equals encoding the series from its first bar to the chunk's start in
    one pass from zeros; every epoch starts the streams afresh the same way."""
    recorder = Recorder(monkeypatch)
    prices = gbm(400, seed=1)
    with carry_model(learning_rate=1e-12, epochs=2) as model:
        model.fit(prices.iloc[:300], prices.iloc[300:])
        network = model.network_
        y = model.scaler_.transform(target_series(prices, "log_return").to_numpy())
        y = y.astype(np.float32)
        chunks = make_chunks(y, 299, chunk_length=7, horizon=3, streams=3)
        assert len(recorder.calls) == 2 * chunks.chunks  # time order, every batch, 2 epochs
        for call, (inputs, targets, fed) in enumerate(recorder.calls):
            batch = call % chunks.chunks
            for stream in range(chunks.streams):
                start = chunks.chunk_start(batch * chunks.streams + stream)
                np.testing.assert_array_equal(inputs[stream, :, 0], y[start : start + 7])
                np.testing.assert_array_equal(targets[stream], y[start + 7 : start + 10])
                one_pass = network.encode(y[None, :start, None])
                for layer, state in enumerate(one_pass):
                    np.testing.assert_allclose(fed[layer].c[stream], state.c[0], atol=2e-5)
                    np.testing.assert_allclose(fed[layer].h[stream], state.h[0], atol=2e-5)
        # Not trivially so: the states differ between streams and from zeros.
        last = recorder.calls[-1][2]
        assert np.abs(last[1].c).min() > 0
        assert not np.allclose(last[1].c[0], last[1].c[1])


def test_the_validation_part_never_reaches_a_training_chunk_or_its_state(monkeypatch):
    """Perturbing the prices after the training part leaves every training chunk, target and
    carried state bit-identical (it moves the validation loss only)."""
    prices = gbm(400, seed=2)
    changed = prices.copy()
    changed.iloc[300:] *= np.exp(np.linspace(0, 0.5, 100))
    recorder, seen, losses = Recorder(monkeypatch), [], []
    for series in (prices, changed):
        recorder.calls = []
        with carry_model(patience=5) as model:
            model.fit(series.iloc[:300], series.iloc[300:])
            losses.append(model.history_.val_loss)
        seen.append(recorder.calls)
    assert len(seen[0]) == len(seen[1]) > 0
    for (inputs, targets, fed), (inputs2, targets2, fed2) in zip(*seen, strict=True):
        np.testing.assert_array_equal(inputs, inputs2)
        np.testing.assert_array_equal(targets, targets2)
        for layer, layer2 in zip(fed, fed2, strict=True):
            np.testing.assert_array_equal(layer.c, layer2.c)
            np.testing.assert_array_equal(layer.h, layer2.h)
    assert losses[0] != losses[1]


# -- checkpoints, heads, refusals ----------------------------------------------------------------


def test_a_stop_inside_an_epoch_resumes_with_the_carried_state_exactly(monkeypatch, tmp_path):
    prices = gbm(400, seed=4)
    train, val = prices.iloc[:300], prices.iloc[300:]
    with carry_model(epochs=3) as straight:
        straight.fit(train, val)
        expected = straight.history_
        expected_weights = straight.network_.get_weights()
    request = StopRequest()
    original = Seq2SeqModel.train_chunk
    calls = []

    def stops_after(network, inputs, targets, initial_state):
        result = original(network, inputs, targets, initial_state)
        calls.append(1)
        if len(calls) == 14 + 5:  # epoch 2, batch 5 of 14
            request.request("SIGTERM received", 15)
        return result

    monkeypatch.setattr(Seq2SeqModel, "train_chunk", stops_after)
    with carry_model(epochs=3) as interrupted:
        interrupted.checkpoint_dir, interrupted.stop_request = tmp_path, request
        with pytest.raises(TrainingInterrupted, match="in epoch 2 after batch 5 of 14"):
            interrupted.fit(train, val)
    assert (tmp_path / checkpoints.LATEST).read_text() == "epoch-0002-batch-00005"
    monkeypatch.setattr(Seq2SeqModel, "train_chunk", original)
    with carry_model(epochs=3) as resumed:
        resumed.checkpoint_dir = tmp_path
        resumed.fit(train, val, resume=True)
        assert resumed.history_.train_loss == expected.train_loss
        assert resumed.history_.val_loss == expected.val_loss
        for name, value in resumed.network_.get_weights().items():
            np.testing.assert_array_equal(value, expected_weights[name])


@pytest.mark.parametrize("output", ["point", "quantiles", "student_t"])
def test_every_output_head_trains_with_the_state_carried(output):
    prices = gbm(500, seed=5)
    with Seq2SeqForecaster(
        window=WindowConfig(lookback=10, horizon=3),
        model=Seq2SeqConfig(num_units=6, output=output, state="carry"),
        train=TrainConfig(
            epochs=4, intra_op_threads=1, carry=True, chunk_length=10, learning_rate=0.01
        ),
    ) as model:
        model.fit(prices.iloc[:350], prices.iloc[350:420])
        forecast = model.predict(prices, np.arange(420, 497, 5))
    losses = model.history_.train_loss
    assert len(losses) == 4 and losses[-1] < losses[0]  # it learns
    assert np.isfinite(forecast.prices).all()
    if output != "point":
        assert np.all(np.diff(forecast.quantiles, axis=-1) >= 0)


def test_carried_training_is_refused_where_it_cannot_apply():
    with pytest.raises(ConfigError, match=r"train\.carry=true .* set model\.state=carry too"):
        Seq2SeqForecaster(train=TrainConfig(carry=True))
    with pytest.raises(ConfigError, match=r"train\.carry='yes' is invalid: expected true or false"):
        TrainConfig(carry="yes")
    for key in ("chunk_length", "streams"):
        with pytest.raises(ConfigError, match=rf"train\.{key}=0 is invalid"):
            TrainConfig(**{key: 0})
    with pytest.raises(ConfigError, match=r"built for a single-series model"):
        GlobalSeq2SeqForecaster(model=Seq2SeqConfig(state="carry"), train=TrainConfig(carry=True))

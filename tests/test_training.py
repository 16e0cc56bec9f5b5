"""The training loop: best-weights selection, early stopping, checkpoints and exact resume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecaster.data.windows import make_dataset
from forecaster.errors import ConfigError, TrainingInterrupted
from forecaster.models.seq2seq.network import Seq2SeqModel
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.training import EarlyStopping, TrainConfig, Trainer, checkpoints
from forecaster.training.stopping import StopRequest


class ScriptedModel:
    """A Trainable whose validation losses are given: its one weight counts the train steps."""

    def __init__(self, val_losses: list[float]) -> None:
        self.val_losses = list(val_losses)
        self.weights = {"steps": np.array(0.0)}

    def train_step(self, inputs, targets) -> float:
        self.weights["steps"] = self.weights["steps"] + 1
        return 1.0

    def validation_loss(self, inputs, targets) -> float:
        return self.val_losses.pop(0)

    def get_weights(self):
        return {k: v.copy() for k, v in self.weights.items()}

    def set_weights(self, weights):
        self.weights = {k: v.copy() for k, v in weights.items()}

    def save_variables(self, prefix: Path) -> None:
        np.save(f"{prefix}.npy", self.weights["steps"])

    def restore_variables(self, prefix: Path) -> None:
        self.weights = {"steps": np.load(f"{prefix}.npy")}


class Windows:
    def __init__(self, n: int) -> None:
        self.inputs = np.zeros((n, 3, 1), np.float32)
        self.targets = np.zeros((n, 2), np.float32)

    def __len__(self) -> int:
        return len(self.inputs)


def test_early_stopping_fires_and_the_model_keeps_its_best_epoch():
    # Best at epoch 2; epochs 3, 4, 5 are no better, so patience 3 stops after epoch 5.
    model = ScriptedModel([5.0, 3.0, 4.0, 3.5, 6.0, 1.0, 1.0])
    config = TrainConfig(epochs=7, batch_size=2, patience=3)
    trainer = Trainer(model, config, callbacks=[EarlyStopping(config.patience)])
    history = trainer.fit(Windows(4), Windows(2))  # 2 train steps per epoch
    assert history.val_loss == [5.0, 3.0, 4.0, 3.5, 6.0]
    assert history.best_epoch == 2 and history.best_val_loss == 3.0
    assert history.stopped_early
    assert model.weights["steps"] == 4  # the weights after epoch 2, not after epoch 5 (10)


def test_without_validation_the_model_trains_every_epoch_and_keeps_the_last():
    model = ScriptedModel([])
    history = Trainer(model, TrainConfig(epochs=3, batch_size=2)).fit(Windows(4))
    assert history.epochs == 3 and history.val_loss == [] and math.isnan(history.best_val_loss)
    assert model.weights["steps"] == 6


@pytest.mark.parametrize(
    "key, value",
    [("epochs", 0), ("batch_size", -1), ("patience", 0), ("learning_rate", 0.0), ("clip_norm", -1)],
)
def test_invalid_train_config_names_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"train\.{key}="):
        TrainConfig(**{key: value})


# -- checkpoints, with the real network -----------------------------------------------------------

SPEC = ModelSpec(horizon=3, num_units=6, num_layers=2, dropout=0.2, learning_rate=0.01)


@pytest.fixture(scope="module")
def windows():
    rng = np.random.default_rng(0)
    prices = np.exp(np.cumsum(rng.normal(0, 0.01, 400))) * 100
    series = pd.Series(prices, index=pd.bdate_range("2020-01-01", periods=400))
    dataset = make_dataset(series, lookback=12, horizon=3)
    return dataset.train, dataset.val


def network(seed: int = 1) -> Seq2SeqModel:
    return Seq2SeqModel(SPEC, seed=seed, intra_op_threads=1)


def test_a_checkpoint_restores_weights_and_optimiser_slots_into_a_fresh_model(windows, tmp_path):
    train, val = windows
    config = TrainConfig(epochs=1, batch_size=32)
    with network() as first, network() as fresh:  # same config and seed, as a resumed run
        Trainer(first, config, checkpoint_dir=tmp_path).fit(train, val)
        untrained = fresh.get_weights()
        assert any(
            not np.array_equal(untrained[name], value)
            for name, value in first.get_weights().items()
        )
        # fit() leaves `first` at its best epoch; the checkpoint holds where training stood.
        state = checkpoints.load(tmp_path, fresh)
        assert state.history.epochs == 1
        first.restore_variables(tmp_path / "epoch-0001" / checkpoints.VARIABLES)
        for name, value in first.get_weights().items():
            np.testing.assert_array_equal(fresh.get_weights()[name], value)
        # The next Adam step depends on the slots (m, v) and beta powers, and its dropout masks
        # on the step counter: identical only if all of them were restored too.
        inputs, targets = train.inputs[:32], train.targets[:32]
        assert first.train_step(inputs, targets) == fresh.train_step(inputs, targets)
        for name, value in first.get_weights().items():
            np.testing.assert_array_equal(fresh.get_weights()[name], value)


def test_resuming_from_a_checkpoint_continues_exactly_as_if_never_stopped(windows, tmp_path):
    train, val = windows
    with network() as straight:
        trainer = Trainer(straight, TrainConfig(epochs=4, batch_size=32), seed=7)
        expected = trainer.fit(train, val)
        expected_weights = straight.get_weights()
    with network() as interrupted:
        Trainer(
            interrupted, TrainConfig(epochs=2, batch_size=32), seed=7, checkpoint_dir=tmp_path
        ).fit(train, val)
    with network() as resumed:  # a new process's model: all it knows comes from the checkpoint
        trainer = Trainer(
            resumed, TrainConfig(epochs=4, batch_size=32), seed=7, checkpoint_dir=tmp_path
        )
        history = trainer.fit(train, val, resume=True)
        weights = resumed.get_weights()
    assert history.train_loss == expected.train_loss
    assert history.val_loss == expected.val_loss
    assert history.best_epoch == expected.best_epoch
    for name, value in expected_weights.items():
        np.testing.assert_array_equal(weights[name], value)


def test_a_crash_while_writing_leaves_the_previous_checkpoint(windows, tmp_path):
    train, val = windows
    with network() as model:
        Trainer(model, TrainConfig(epochs=1, batch_size=32), checkpoint_dir=tmp_path).fit(
            train, val
        )

        class Crashing:
            def save_variables(self, prefix):
                (prefix.parent / "variables.index").write_text("half")
                raise KeyboardInterrupt  # the process is stopped mid-write

        state = checkpoints.load(tmp_path, model)
        state.history.train_loss.append(0.5)
        with pytest.raises(KeyboardInterrupt):
            checkpoints.save(tmp_path, Crashing(), state)
        assert (tmp_path / checkpoints.LATEST).read_text() == "epoch-0001"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "latest"]
        assert checkpoints.load(tmp_path, model).history.epochs == 1


def test_resuming_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint in"):
        checkpoints.load(tmp_path, ScriptedModel([]))


class StopsAfter:
    """Wraps a model: asks the loop to stop after `steps` train steps, as a signal handler
    would, from outside the loop."""

    def __init__(self, model, steps: int, request: StopRequest) -> None:
        self.model, self.steps, self.request = model, steps, request

    def train_step(self, inputs, targets):
        loss = self.model.train_step(inputs, targets)
        self.steps -= 1
        if self.steps == 0:
            self.request.request("SIGTERM received", 15)
        return loss

    def __getattr__(self, name):
        return getattr(self.model, name)


def test_a_stop_request_inside_an_epoch_checkpoints_there_and_resuming_is_exact(windows, tmp_path):
    train, val = windows  # 9 batches of 32 per epoch
    config = TrainConfig(epochs=3, batch_size=32)
    with network() as straight:
        expected = Trainer(straight, config, seed=7).fit(train, val)
        expected_weights = straight.get_weights()
    request = StopRequest()
    with network() as interrupted:
        trainer = Trainer(
            StopsAfter(interrupted, 9 + 4, request),  # epoch 2, batch 4
            config,
            seed=7,
            checkpoint_dir=tmp_path,
            stop_request=request,
        )
        with pytest.raises(TrainingInterrupted) as stopped:
            trainer.fit(train, val)
    assert str(stopped.value) == (
        "SIGTERM received: training stopped in epoch 2 after batch 4 of 9 "
        f"(checkpoint {tmp_path / 'epoch-0002-batch-00004'})"
    )
    assert stopped.value.signal_number == 15
    assert (tmp_path / checkpoints.LATEST).read_text() == "epoch-0002-batch-00004"
    with network() as resumed:
        history = Trainer(resumed, config, seed=7, checkpoint_dir=tmp_path).fit(
            train, val, resume=True
        )
        weights = resumed.get_weights()
    assert history.train_loss == expected.train_loss
    assert history.val_loss == expected.val_loss
    for name, value in expected_weights.items():
        np.testing.assert_array_equal(weights[name], value)


def test_a_stop_request_without_a_checkpoint_directory_says_nothing_can_resume():
    request = StopRequest()
    model = ScriptedModel([1.0, 1.0])
    trainer = Trainer(
        StopsAfter(model, 3, request), TrainConfig(epochs=2, batch_size=2), stop_request=request
    )
    with pytest.raises(TrainingInterrupted, match=r"in epoch 2 after batch 1 of 2 \(no checkpoint"):
        trainer.fit(Windows(4), Windows(2))


def test_a_stop_request_after_the_last_batch_is_not_lost(tmp_path):
    request = StopRequest()
    model = ScriptedModel([1.0])
    trainer = Trainer(
        StopsAfter(model, 2, request),
        TrainConfig(epochs=1, batch_size=2),
        checkpoint_dir=tmp_path,
        stop_request=request,
    )
    with pytest.raises(TrainingInterrupted, match=r"after epoch 1 \(checkpoint .*epoch-0001\)"):
        trainer.fit(Windows(4), Windows(2))
    assert not request.listening

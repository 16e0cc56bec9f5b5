"""The training loop: shuffled mini-batches, validation, best-weights selection, checkpoints.

With `train.carry=true` the batches are not shuffled but visited in time order, `streams` rows
each: the model carries its state from one batch to the next (truncated backpropagation through
time; `forecaster.models.seq2seq.carry.CarriedStateTraining`).

Like minGPT's Trainer, it trains anything that is `Trainable` and knows no model, no MLflow and
no Hydra; what happens at the end of an epoch beyond that (early stopping, tracking) is a
callback's business. With a checkpoint directory it writes, after every epoch, all it needs to
continue exactly where it stopped (`forecaster.training.checkpoints`), and `fit(resume=True)`
continues from there. Given a `StopRequest`, it polls it after every batch: once requested, it
writes a checkpoint where it stands (inside the epoch) and raises `TrainingInterrupted`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from forecaster.errors import ConfigError, TrainingDivergedError, TrainingInterrupted
from forecaster.training import checkpoints
from forecaster.training.history import EpochLogs, History
from forecaster.training.precision import check_precision
from forecaster.training.stopping import StopRequest
from forecaster.training.teacher_forcing import TeacherForcing

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """The `train` config group: how a model is fitted."""

    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 64
    learning_rate: float = 1e-3  # Adam
    clip_norm: float = 1.0  # gradients clipped by global norm
    patience: int = 5  # epochs without a better val_loss before stopping
    intra_op_threads: int = 2  # TensorFlow threads: fastest on 2 cores; 1 per parallel job
    inter_op_threads: int = 1
    precision: str = "float32"  # or "bf16", on CPUs with AVX512-BF16 or AMX (training.precision)
    # Scheduled sampling (training.teacher_forcing): the share of decoder steps that read the
    # true previous value, constant or the floor of a decay from 1.0 over epochs.
    teacher_forcing: float = 1.0
    teacher_forcing_decay: str = "constant"  # or "linear", "inverse_sigmoid"
    teacher_forcing_epochs: float = 10.0  # linear: epochs to the floor; inverse_sigmoid: its k
    # false: shuffled batches of `batch_size` windows, each encoded from a zero state. true:
    # truncated backpropagation through time: `streams` contiguous segments of the training
    # series walked forward side by side in chunks of `chunk_length` bars, in time order, each
    # chunk starting from the state the previous one ended with (the model carries it).
    carry: bool = False
    chunk_length: int = 20  # carry: bars per chunk (how far back gradients reach)
    streams: int = 8  # carry: segments trained side by side (the batch size)

    def __post_init__(self) -> None:
        for key in (
            "epochs",
            "batch_size",
            "patience",
            "intra_op_threads",
            "inter_op_threads",
            "chunk_length",
            "streams",
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"train.{key}={value!r} is invalid: expected an integer >= 1.")
        for key in ("learning_rate", "clip_norm"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"train.{key}={value!r} is invalid: expected a number > 0.")
        if not isinstance(self.carry, bool):
            raise ConfigError(f"train.carry={self.carry!r} is invalid: expected true or false.")
        check_precision(self.precision)
        self.teacher_forcing_schedule()

    @property
    def batch_rows(self) -> int:
        """Rows per batch: windows, or with `carry` streams."""
        return self.streams if self.carry else self.batch_size

    def teacher_forcing_schedule(self) -> TeacherForcing:
        return TeacherForcing(
            float(self.teacher_forcing), self.teacher_forcing_decay, self.teacher_forcing_epochs
        )


class Windows(Protocol):
    """Batches come from here: `forecaster.data.windows.WindowSet` is one."""

    inputs: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int: ...


class Trainable(Protocol):
    """What the loop needs of a model."""

    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float: ...

    def validation_loss(self, inputs: np.ndarray, targets: np.ndarray) -> float: ...

    def get_weights(self) -> dict[str, np.ndarray]: ...

    def set_weights(self, weights: dict[str, np.ndarray]) -> None: ...

    def save_variables(self, prefix: Path) -> None: ...

    def restore_variables(self, prefix: Path) -> None: ...


class Callback(Protocol):
    def on_epoch_end(self, trainer: Trainer, logs: EpochLogs) -> None: ...


class Trainer:
    """Fits one `Trainable` model. Callbacks may call `stop()` to end after the current epoch."""

    def __init__(
        self,
        model: Trainable,
        config: TrainConfig,
        *,
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        stop_request: StopRequest | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.seed = seed  # the shuffling order; the model seeds its own initialisation
        self.callbacks = list(callbacks)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.stop_request = stop_request or StopRequest()
        self.history = History()
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def fit(self, train: Windows, val: Windows | None = None, *, resume: bool = False) -> History:
        """Train for `config.epochs` or until a callback stops it. With `val`, the model ends at
        its best validation epoch; without, at its last. `resume=True` continues from the
        checkpoint in `checkpoint_dir` (same data and config) as if never interrupted."""
        with self.stop_request.listen():
            return self._fit(train, val, resume)

    def _fit(self, train: Windows, val: Windows | None, resume: bool) -> History:
        rng = np.random.default_rng(self.seed)
        self.history, self._stop = History(), False
        self.best_weights = self.model.get_weights() if val is not None else None
        partial = None
        if resume:
            if self.checkpoint_dir is None:
                raise ConfigError("resuming needs the checkpoint directory of the earlier run")
            state = checkpoints.load(self.checkpoint_dir, self.model)
            self.history, self._stop = state.history, state.stop_requested
            rng.bit_generator.state = state.rng_state
            self.best_weights, partial = state.best_weights, state.partial
        best_val = self.history.best_val_loss if self.history.best_epoch else math.inf
        first = self.history.epochs + 1
        for epoch in range(first, self.config.epochs + 1):
            self._check_stop_request()
            if self._stop:
                break
            started = time.perf_counter()
            epoch_rng_state = rng.bit_generator.state  # this epoch's order, for a checkpoint
            order = self._epoch_order(train, rng)
            done = partial.losses if partial is not None and partial.epoch == epoch else []
            train_loss = self._train_epoch(train, order, epoch, done, epoch_rng_state)
            self.history.train_loss.append(train_loss)
            val_loss = math.nan
            if val is not None:
                val_loss = self.model.validation_loss(val.inputs, val.targets)
                if not math.isfinite(val_loss):
                    raise TrainingDivergedError(
                        f"validation loss became {val_loss} at epoch {epoch}: lower "
                        "train.learning_rate."
                    )
                self.history.val_loss.append(val_loss)
                if val_loss < best_val:
                    best_val, self.history.best_epoch = val_loss, epoch
                    self.best_weights = self.model.get_weights()
            logs = EpochLogs(
                epoch,
                train_loss,
                val_loss,
                best_val,
                self.history.best_epoch,
                time.perf_counter() - started,
            )
            log.info(
                "epoch %d/%d  train_loss=%.5f  val_loss=%.5f  best=%.5f (epoch %d)  %.1fs",
                epoch,
                self.config.epochs,
                train_loss,
                val_loss,
                best_val,
                self.history.best_epoch,
                logs.seconds,
            )
            for callback in self.callbacks:
                callback.on_epoch_end(self, logs)
            if self.checkpoint_dir is not None:
                checkpoints.save(
                    self.checkpoint_dir,
                    self.model,
                    checkpoints.TrainingState(
                        self.history, rng.bit_generator.state, self.best_weights, self._stop
                    ),
                )
        self._check_stop_request()  # one that came after the last batch is not lost
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
        return self.history

    def _train_epoch(
        self,
        train: Windows,
        order: np.ndarray,
        epoch: int,
        done: list[float],
        rng_state: dict,
    ) -> float:
        """Train on the batches of `order`, skipping the `len(done)` a checkpoint inside this
        epoch already trained on (their losses are `done`). `rng_state` gives `order` again."""
        batch_size = self.config.batch_rows
        losses = list(done)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts[len(done) :], desc=f"epoch {epoch}", leave=False, disable=None):
            rows = order[start : start + batch_size]
            loss = self.model.train_step(train.inputs[rows], train.targets[rows])
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"training loss became {loss} at epoch {epoch}, batch "
                    f"{start // batch_size + 1}: lower train.learning_rate "
                    f"(or train.clip_norm) and check the data for extreme values."
                )
            losses.append(loss)
            if self.stop_request.requested and len(losses) < len(starts):
                progress = checkpoints.EpochProgress(epoch, losses, len(starts))
                state = checkpoints.TrainingState(
                    self.history, rng_state, self.best_weights, False, progress
                )
                self._interrupt(state)
        return float(np.mean(losses))

    def _epoch_order(self, train: Windows, rng: np.random.Generator) -> np.ndarray:
        """Shuffled windows; with `train.carry=true`, the rows in time order: `train` holds
        chunk b of every stream in rows b * streams ... (b + 1) * streams - 1, and the model
        carries each stream's state from one batch to the next."""
        if self.config.carry:
            return np.arange(len(train))
        return rng.permutation(len(train))

    def _check_stop_request(self) -> None:
        """Between epochs: the last epoch's checkpoint is where training stands."""
        if self.stop_request.requested:
            self._interrupt(None)

    def _interrupt(self, state: checkpoints.TrainingState | None) -> None:
        """Write `state` (where training stands inside an epoch; None: the last epoch's
        checkpoint is) and raise `TrainingInterrupted` saying where training stopped."""
        where = f"after epoch {self.history.epochs}"
        if state is not None:
            done = state.partial
            where = f"in epoch {done.epoch} after batch {len(done.losses)} of {done.batches}"
        saved = "no checkpoint directory: nothing to resume from"
        if self.checkpoint_dir is not None:
            if state is not None:
                checkpoints.save(self.checkpoint_dir, self.model, state)
            latest = self.checkpoint_dir / checkpoints.LATEST
            if latest.exists():
                saved = f"checkpoint {self.checkpoint_dir / latest.read_text()}"
            else:
                saved = "no checkpoint yet"
        request = self.stop_request
        raise TrainingInterrupted(
            f"{request.reason}: training stopped {where} ({saved})", request.signal_number
        )

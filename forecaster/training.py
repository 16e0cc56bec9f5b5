"""The training loop: shuffled mini-batches, validation, early stopping, best-weights restore.

Model-agnostic beyond `train_step`, `forecast_loss`, `get_weights` and `set_weights`; reports
through callbacks and knows nothing of MLflow or Hydra.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import numpy as np
from tqdm import tqdm

from forecaster.errors import ConfigError, TrainingDivergedError
from forecaster.model import Seq2SeqModel
from forecaster.windows import WindowSet

log = logging.getLogger(__name__)


class EpochLogs(NamedTuple):
    epoch: int  # 1-based
    train_loss: float  # mean teacher-forced MSE over the epoch's batches (scaled units)
    val_loss: float  # autoregressive forecast MSE on the validation windows (scaled units)
    best_val_loss: float
    seconds: float


class Callback(Protocol):
    def on_epoch_end(self, logs: EpochLogs) -> None: ...


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0  # 1-based epoch whose weights the model holds after `fit`
    stopped_early: bool = False

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch - 1]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 50  # train.epochs
    batch_size: int = 64  # train.batch_size
    patience: int = 10  # train.patience: epochs without a better val_loss before stopping
    seed: int = 0  # seed: shuffling order (the graph seed is set by the model)

    def __post_init__(self) -> None:
        for key, value in (
            ("train.epochs", self.epochs),
            ("train.batch_size", self.batch_size),
            ("train.patience", self.patience),
        ):
            if value < 1:
                raise ConfigError(f"{key}={value!r} is invalid: expected an integer >= 1.")


def fit(
    model: Seq2SeqModel,
    train: WindowSet,
    val: WindowSet,
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train until `config.epochs` or early stopping; leave the model at its best epoch."""
    rng = np.random.default_rng(config.seed)
    history = History()
    best_weights = model.get_weights()
    best_val = math.inf
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(train))
        batch_losses = []
        batches = range(0, len(order), config.batch_size)
        for start in tqdm(batches, desc=f"epoch {epoch}", leave=False, disable=None):
            rows = order[start : start + config.batch_size]
            batch_loss = model.train_step(train.inputs[rows], train.targets[rows])
            if not math.isfinite(batch_loss):
                raise TrainingDivergedError(
                    f"training loss became {batch_loss} at epoch {epoch}, batch "
                    f"{start // config.batch_size + 1}: lower train.learning_rate "
                    f"(or train.clip_norm) and check the data for extreme values."
                )
            batch_losses.append(batch_loss)
        train_loss = float(np.mean(batch_losses))
        val_loss = model.forecast_loss(val.inputs, val.targets)
        if not math.isfinite(val_loss):
            raise TrainingDivergedError(
                f"validation loss became {val_loss} at epoch {epoch}: lower train.learning_rate."
            )
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        if val_loss < best_val:
            best_val, history.best_epoch = val_loss, epoch
            best_weights = model.get_weights()
        logs = EpochLogs(epoch, train_loss, val_loss, best_val, time.perf_counter() - started)
        log.info(
            "epoch %d/%d  train_loss=%.5f  val_loss=%.5f  best=%.5f (epoch %d)  %.1fs",
            epoch,
            config.epochs,
            train_loss,
            val_loss,
            best_val,
            history.best_epoch,
            logs.seconds,
        )
        for callback in callbacks:
            callback.on_epoch_end(logs)
        if epoch - history.best_epoch >= config.patience:
            history.stopped_early = True
            log.info("early stopping: no better val_loss for %d epochs", config.patience)
            break
    model.set_weights(best_weights)
    return history

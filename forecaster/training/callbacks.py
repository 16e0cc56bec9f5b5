"""Callbacks the training loop calls at the end of every epoch."""

from __future__ import annotations

import logging

from forecaster.errors import ConfigError
from forecaster.training.history import EpochLogs
from forecaster.training.loop import Trainer

log = logging.getLogger(__name__)


class EarlyStopping:
    """Stop once `patience` epochs have passed without a better validation loss. The loop
    itself keeps the best epoch's weights, so stopping loses nothing."""

    def __init__(self, patience: int) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"train.patience={patience!r} is invalid: expected an integer >= 1.")
        self.patience = patience

    def on_epoch_end(self, trainer: Trainer, logs: EpochLogs) -> None:
        if logs.best_epoch and logs.epoch - logs.best_epoch >= self.patience:
            trainer.history.stopped_early = True
            trainer.stop()
            log.info("early stopping: no better val_loss for %d epochs", self.patience)

"""What a fit leaves behind: the loss per epoch and which epoch's weights the model keeps."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)  # empty when fitted without validation
    best_epoch: int = 0  # 1-based epoch whose weights the model holds after `fit`
    stopped_early: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch - 1] if self.best_epoch else math.nan


@dataclass(frozen=True)
class EpochLogs:
    epoch: int  # 1-based
    train_loss: float  # mean teacher-forced MSE over the epoch's batches (scaled units)
    val_loss: float  # autoregressive forecast MSE on the validation windows; NaN without them
    best_val_loss: float
    best_epoch: int
    seconds: float

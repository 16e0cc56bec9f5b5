"""A progress bar over training epochs, on a terminal only.

tqdm (already a dependency) draws it, and is disabled when stderr is not a terminal, so logs
written to files, CI output and sweep jobs' logs get the epoch lines alone, no bar.
"""

from __future__ import annotations

import sys
from typing import IO

from forecaster.training.history import EpochLogs
from forecaster.training.loop import Trainer


class EpochProgress:
    """A training callback: one bar step per epoch, with the validation loss."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        from tqdm import tqdm

        stream = stream if stream is not None else sys.stderr
        self.bar = tqdm(
            total=total,
            desc="training",
            unit="epoch",
            file=stream,
            disable=not stream.isatty(),
            leave=False,
            dynamic_ncols=True,
            mininterval=0,  # one step an epoch: draw every one
        )
        self.shown = not self.bar.disable

    def on_epoch_end(self, trainer: Trainer, logs: EpochLogs) -> None:
        self.bar.set_postfix(val_loss=f"{logs.val_loss:.5f}", refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

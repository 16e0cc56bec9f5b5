"""Progress bars over long work (training epochs, backtest fits), on a terminal only.

tqdm (already a dependency) draws them, disabled when stderr is not a terminal, so logs written
to files, CI output and sweep jobs' logs get the run's log lines alone, no bar.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import IO, Any

from forecaster.training.history import EpochLogs
from forecaster.training.loop import Trainer


class Progress:
    """A bar of `total` steps; also a training callback (a step per epoch)."""

    def __init__(
        self, total: int, desc: str = "training", unit: str = "epoch", stream: IO[str] | None = None
    ) -> None:
        from tqdm import tqdm

        stream = stream if stream is not None else sys.stderr
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=stream,
            disable=not stream.isatty(),
            leave=False,
            dynamic_ncols=True,
            mininterval=0,  # each step is seconds of work: draw every one
        )
        self.shown = not self.bar.disable

    def step(self, postfix: str = "") -> None:
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(1)

    def on_epoch_end(self, trainer: Trainer, logs: EpochLogs) -> None:
        self.step(f"val_loss={logs.val_loss:.5f}")

    def close(self) -> None:
        self.bar.close()

    def around(self, fit_context: Callable[..., Any]) -> Callable[..., Any]:
        """A backtest's `fit_context` that also steps the bar after each fit."""

        @contextlib.contextmanager
        def context(name: str, fold, model) -> Iterator[None]:
            with fit_context(name, fold, model):
                yield
            self.step(f"fold {fold.index + 1} {name}")

        return context

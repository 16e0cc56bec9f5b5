"""Progress bars over long work (training epochs, backtest fits, sweep jobs), on a terminal only.

tqdm (already a dependency) draws them, disabled when stderr is not a terminal, so logs written
to files, CI output and sweep jobs' logs get the run's log lines alone, no bar.
"""

from __future__ import annotations

import contextlib
import sys
import threading
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


class JobProgress:
    """A bar over a sweep's jobs, in the launching process: jobs run in other processes (joblib)
    or machines (Ray), so a thread polls `ended()` (how many have ended, from the tracking store)
    every `interval` seconds until `close`. Nothing runs when the bar is not shown."""

    def __init__(
        self,
        total: int | None,
        ended: Callable[[], int],
        interval: float = 2.0,
        stream: IO[str] | None = None,
    ) -> None:
        self.progress = Progress(total or 0, desc="sweep", unit="job", stream=stream)
        if total is None:
            self.progress.bar.total = None  # a count without a bar: the sweeper decides
        self.ended, self.interval = ended, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="sweep-progress", daemon=True)
        if self.progress.shown:
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.update()

    def update(self) -> None:
        try:
            done = self.ended()
        except Exception:  # noqa: BLE001 (a store busy for a moment: the next poll will do)
            return
        if done > self.progress.bar.n:
            self.progress.bar.update(done - self.progress.bar.n)

    def close(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
            self.update()
        self.progress.close()

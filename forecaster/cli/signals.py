"""SIGINT (Ctrl-C) and SIGTERM during a command: training stops at the next batch boundary and
writes a checkpoint; a second signal stops at once.

Docker, Kubernetes and Slurm stop a job with SIGTERM (and SIGKILL after a grace period), a
terminal sends SIGINT. The handlers live here, with the process, not in the training loop: they
only turn a signal into a `StopRequest`, which the loop honours where it can stop cleanly, or,
when no loop is listening (loading data, logging the model), into `TrainingInterrupted` at once.
Either way the run ends KILLED with the reason, and the process exits with 128 + the signal's
number, as a shell reports a process a signal ended.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from forecaster.errors import TrainingInterrupted
from forecaster.training.stopping import StopRequest

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
received: list[str] = []  # the signals this process was stopped by, by name, in order


@contextmanager
def stop_on_signals(request: StopRequest) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM stop training through `request`."""
    if threading.current_thread() is not threading.main_thread():
        yield request  # only the main thread may handle signals (some launchers' workers)
        return

    def handle(number: int, frame) -> None:
        name = signal.Signals(number).name
        received.append(name)
        if request.requested:
            raise TrainingInterrupted(
                f"{name} received again: stopped at once, without a checkpoint", number
            )
        if not request.listening:
            raise TrainingInterrupted(f"{name} received while not training: stopped", number)
        request.request(f"{name} received", number)
        log.warning(
            "%s received: training stops after this batch and writes a checkpoint (send it "
            "again to stop at once)",
            name,
        )

    previous = {number: signal.signal(number, handle) for number in SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def exit_status(stopped: TrainingInterrupted) -> int:
    """128 + the signal's number: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + (stopped.signal_number or signal.SIGINT)

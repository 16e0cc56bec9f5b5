"""A request to stop training, made from outside the loop and honoured at a batch boundary.

The loop knows nothing of signals or processes: whoever owns the process (the command-line
entry point's signal handlers) calls `request`, and the loop, which polls `requested` after every
batch, writes a checkpoint and raises `TrainingInterrupted`. While no loop is `listening`, a
request cannot wait for a batch boundary, so its maker should stop at once instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    def __init__(self) -> None:
        self.reason: str | None = None  # e.g. "SIGTERM received"; None until requested
        self.signal_number: int | None = None
        self.listening = False  # a training loop is running and polls this request

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str, signal_number: int | None = None) -> None:
        self.reason, self.signal_number = reason, signal_number

    @contextmanager
    def listen(self) -> Iterator[None]:
        self.listening = True
        try:
            yield
        finally:
            self.listening = False

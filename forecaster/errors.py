"""Errors a user can fix. Entry points print their message without a traceback.

Each message names the problem and the fix: the file, column and line for data, the config key
for settings. Anything else that escapes is a bug and keeps its traceback.
"""


class ForecasterError(Exception):
    """Base of the errors caused by the user's input or settings."""


class DataError(ForecasterError, ValueError):
    """Bad input data. The message names the file, column, first offending row and the fix."""


class ConfigError(ForecasterError, ValueError):
    """An invalid setting. The message names the config key and what it accepts."""


class TrainingDivergedError(ForecasterError, RuntimeError):
    """The loss became NaN or infinite. The message says which settings to change."""


class NotFittedError(ForecasterError, RuntimeError):
    """A model was asked to forecast before it was fitted."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training was asked to stop (Ctrl-C, SIGTERM) and did, at a batch boundary, after writing
    a checkpoint when it had a checkpoint directory. A `KeyboardInterrupt`, so no `except
    Exception` swallows it and runs end KILLED; the message says why and where it stopped."""

    def __init__(self, message: str, signal_number: int | None = None) -> None:
        super().__init__(message)
        self.signal_number = signal_number  # for the process's exit status (128 + number)

    def __reduce__(self):  # pickled back from a sweep's worker process, number and all
        return type(self), (str(self), self.signal_number)

"""Checkpoints: everything the training loop needs to continue exactly where it stopped.

One checkpoint is a directory `epoch-NNNN/` (after epoch NNNN) or `epoch-NNNN-batch-BBBBB/`
(inside epoch NNNN, after batch BBBBB: where a stop request found training) holding

    variables.*        every variable of the model (weights, optimiser slots), via the model's
                       own `save_variables` (a TF1 `Saver` for the seq2seq; training with the
                       state carried adds the state it carries, `variables.carried.npz`)
    best_weights.npz   the weights of the best validation epoch so far (what `fit` returns)
    state.json         epochs done, the loss history, the best epoch, the shuffling RNG's state
                       (for a checkpoint inside an epoch: its state when that epoch began, which
                       gives the epoch's batch order again, and the losses of its batches so far)

and a file `latest` names the newest one. A checkpoint is written into a temporary directory,
flushed to disk, renamed into place and only then named in `latest` (an atomic replace), so a
process killed at any moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from forecaster.errors import ConfigError
from forecaster.training.history import History

LATEST = "latest"
VARIABLES = "variables"
BEST_WEIGHTS = "best_weights.npz"
STATE = "state.json"
FORMAT = 2  # 2 added checkpoints inside an epoch
READABLE_FORMATS = (1, 2)


class Checkpointable(Protocol):
    def save_variables(self, prefix: Path) -> None: ...

    def restore_variables(self, prefix: Path) -> None: ...


@dataclass
class EpochProgress:
    """How far training got inside an epoch: the batches done, by their losses."""

    epoch: int  # 1-based, the epoch under way
    losses: list[float]  # one per batch done
    batches: int  # batches in the epoch


@dataclass
class TrainingState:
    history: History
    rng_state: dict[str, Any]  # numpy's bit generator state: the next shuffle's order
    best_weights: dict[str, np.ndarray] | None
    stop_requested: bool  # a callback (early stopping) ended training after this epoch
    partial: EpochProgress | None = None  # set for a checkpoint inside an epoch

    @property
    def name(self) -> str:
        if self.partial is None:
            return f"epoch-{self.history.epochs:04d}"
        return f"epoch-{self.partial.epoch:04d}-batch-{len(self.partial.losses):05d}"


def save(directory: Path, model: Checkpointable, state: TrainingState) -> Path:
    """Write the checkpoint of `state` (after an epoch, or inside one); return its directory."""
    directory.mkdir(parents=True, exist_ok=True)
    name = state.name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=directory))
    try:
        model.save_variables(staging / VARIABLES)
        if state.best_weights is not None:
            np.savez(staging / BEST_WEIGHTS, **state.best_weights)
        document = {
            "format": FORMAT,
            "history": asdict(state.history),
            "rng_state": state.rng_state,
            "stop_requested": state.stop_requested,
            "partial": None if state.partial is None else asdict(state.partial),
        }
        (staging / STATE).write_text(json.dumps(document))
        for path in staging.iterdir():
            _fsync(path)
        final = directory / name
        if final.exists():  # the same epoch again (a resumed run): replace it
            shutil.rmtree(final)
        staging.rename(final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = directory / f".{LATEST}.tmp"
    pointer.write_text(name)
    _fsync(pointer)
    os.replace(pointer, directory / LATEST)
    _fsync(directory)
    for old in directory.glob("epoch-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load(directory: Path, model: Checkpointable) -> TrainingState:
    """Restore the model's variables from the newest checkpoint and return the loop's state."""
    try:
        name = (directory / LATEST).read_text().strip()
    except OSError:
        raise ConfigError(
            f"no checkpoint in {directory}: a checkpoint is written after every epoch, so the "
            "run ended before its first epoch did, or this is not its checkpoint directory."
        ) from None
    path = directory / name
    document = json.loads((path / STATE).read_text())
    if document.get("format") not in READABLE_FORMATS:
        raise ConfigError(
            f"{path / STATE} has format {document.get('format')}; this version reads "
            f"{READABLE_FORMATS}"
        )
    model.restore_variables(path / VARIABLES)
    best_weights = None
    if (path / BEST_WEIGHTS).exists():
        with np.load(path / BEST_WEIGHTS) as arrays:
            best_weights = {key: arrays[key] for key in arrays.files}
    return TrainingState(
        history=History(**document["history"]),
        rng_state=document["rng_state"],
        best_weights=best_weights,
        stop_requested=document["stop_requested"],
        partial=EpochProgress(**document["partial"]) if document.get("partial") else None,
    )


def _fsync(path: Path) -> None:
    """Flush a file or directory to disk, so a rename never publishes unwritten data."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

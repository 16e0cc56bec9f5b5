"""The training layer: a model-agnostic loop, its callbacks and its checkpoints.

It imports no model, no MLflow and no Hydra; models use it to fit themselves.
"""

from forecaster.training.callbacks import EarlyStopping
from forecaster.training.history import EpochLogs, History
from forecaster.training.loop import Callback, Trainable, TrainConfig, Trainer

__all__ = [
    "Callback",
    "EarlyStopping",
    "EpochLogs",
    "History",
    "TrainConfig",
    "Trainable",
    "Trainer",
]

"""Typed schema for the Hydra config, so a misspelt key or a wrong type fails at compose time.

The YAML files in `conf/` fill these dataclasses; `conf/config.yaml` puts the schema first in
its defaults list. Each group maps one to one onto an object's constructor arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from forecaster import PROJECT_ROOT


def project_path(relative: str) -> str:
    """`${project_path:data/sp500.csv}`: a path inside the repository, made absolute.

    Defaults point inside the checkout, so they work from any working directory.
    """
    return str(PROJECT_ROOT / relative)


# conf/: the Hydra config groups, beside the package.
CONFIG_DIR = project_path("conf")


@dataclass
class DataConf:
    path: str = MISSING
    date_column: str = "Date"
    price_column: str | None = None  # None: "Adj Close" when present, else "Close"
    target: str = "log_return"  # or "price"


@dataclass
class WindowConf:
    lookback: int = 60
    horizon: int = 5
    stride: int = 1  # thins training windows only; evaluation uses every origin
    val_fraction: float = 0.15
    test_fraction: float = 0.15


@dataclass
class ModelConf:
    num_units: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    encoder: str = "fused"  # or "while_loop"; chosen by `python -m forecaster bench`


@dataclass
class TrainConf:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    clip_norm: float = 1.0
    patience: int = 5
    intra_op_threads: int = 2
    inter_op_threads: int = 1


@dataclass
class TrackingConf:
    uri: str = MISSING
    experiment_name: str = "forecaster"
    # Where a new experiment stores artifacts. None: `mlartifacts/` beside a SQLite file, or
    # the server's default for an http(s) URI.
    artifact_location: str | None = None
    run_name: str | None = None


@dataclass
class EvalConf:
    plot_origins: int = 4  # test forecast origins drawn in plots/forecast.png


@dataclass
class TrainAppConf:
    data: DataConf = field(default_factory=DataConf)
    window: WindowConf = field(default_factory=WindowConf)
    model: ModelConf = field(default_factory=ModelConf)
    train: TrainConf = field(default_factory=TrainConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    eval: EvalConf = field(default_factory=EvalConf)
    seed: int = 42


@dataclass
class PredictAppConf:
    data: DataConf = field(default_factory=DataConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    run_id: str | None = None  # the training run whose model (and states) to use
    model_uri: str | None = None  # or any MLflow model URI; default runs:/<run_id>/model
    warm_start: bool = False  # carry the run's final states over the bars after training
    output: str | None = None  # CSV path; default predictions/<run_id>_<last date>.csv


def register() -> None:
    """Register the resolver and the schema. Idempotent: entry points and tests both call it."""
    if not OmegaConf.has_resolver("project_path"):
        OmegaConf.register_new_resolver("project_path", project_path)
    ConfigStore.instance().store(name="train_schema", node=TrainAppConf)
    ConfigStore.instance().store(name="predict_schema", node=PredictAppConf)

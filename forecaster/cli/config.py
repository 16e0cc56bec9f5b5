"""The typed schema of the Hydra config, so a misspelt key or a wrong type fails at compose time.

`conf/train.yaml` and `conf/predict.yaml` put their schema first in the defaults list. The
`window`, `model` and `train` groups are the very dataclasses the code runs with (their defaults
are the defaults, in one place); `OmegaConf.to_object` turns a composed config into them,
checking every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from forecaster.data.splits import WindowConfig
from forecaster.errors import ConfigError
from forecaster.evaluation.backtest import BacktestConfig
from forecaster.models import DEEP_MODELS, REGISTRY
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.paths import bundled, workspace
from forecaster.training.loop import TrainConfig

CONFIG_PATH = "pkg://forecaster.conf"


@dataclass
class DataConf:
    path: str = MISSING  # a CSV; relative paths are relative to where the command runs
    date_column: str = "Date"
    price_column: str | None = None  # None: "Adj Close" when present, else "Close"
    target: str = "log_return"  # what the model learns: "log_return" or "price"


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
class ObjectiveConf:
    """What a sweep optimises: a metric every run logs, and which way is better."""

    metric: str = "best_val_loss"
    direction: str = "minimize"  # or "maximize"

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ConfigError(
                f"objective.direction={self.direction!r} is invalid: expected 'minimize' or "
                "'maximize'."
            )


@dataclass
class TrainRunConfig(TrainConfig):
    """`train` of `python -m forecaster train`: the loop's settings, and the baselines every
    run is scored against on the same test origins (the random walk always is)."""

    baselines: list[str] = field(default_factory=lambda: ["naive", "drift", "ridge"])

    def __post_init__(self) -> None:
        super().__post_init__()
        known = sorted(set(REGISTRY) - set(DEEP_MODELS))
        unknown = [name for name in self.baselines if name not in known]
        if unknown:
            raise ConfigError(
                f"train.baselines={list(self.baselines)!r}: unknown baseline(s) {unknown}; "
                f"choose from {known}."
            )


@dataclass
class TrainAppConf:
    data: DataConf = field(default_factory=DataConf)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    train: TrainRunConfig = field(default_factory=TrainRunConfig)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    eval: EvalConf = field(default_factory=EvalConf)
    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    seed: int = 42  # same seed, data and config: same metrics


@dataclass
class BacktestAppConf:
    data: DataConf = field(default_factory=DataConf)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    tracking: TrackingConf = field(default_factory=TrackingConf)
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
    """Register the resolvers and the schemas. Idempotent: entry points and tests call it."""
    for name, resolver in (("bundled", bundled), ("workspace", workspace)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    ConfigStore.instance().store(name="train_schema", node=TrainAppConf)
    ConfigStore.instance().store(name="backtest_schema", node=BacktestAppConf)
    ConfigStore.instance().store(name="predict_schema", node=PredictAppConf)

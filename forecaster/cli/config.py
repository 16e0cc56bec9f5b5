"""The typed schema of the Hydra config, so a misspelt key or a wrong type fails at compose time.

`conf/train.yaml` and `conf/predict.yaml` put their schema first in the defaults list. The
`window`, `model` and `train` groups are the very dataclasses the code runs with (their defaults
are the defaults, in one place); `OmegaConf.to_object` turns a composed config into them,
checking every value.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields, is_dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from forecaster.api import DEFAULT_BASELINES
from forecaster.data.panel import Panel, load_panel
from forecaster.data.splits import WindowConfig
from forecaster.errors import ConfigError
from forecaster.evaluation.backtest import BacktestConfig
from forecaster.models import DEEP_MODELS, REGISTRY
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.paths import bundled, workspace
from forecaster.training.loop import TrainConfig

CONFIG_PATH = "pkg://forecaster.conf"
MAX_SEED = 2**32 - 1  # numpy's generators take any seed >= 0; TensorFlow's fit in 64 bits


@dataclass
class DataConf:
    """The `data` group: one price series (`path`), or a panel of many tickers: several files
    (`paths`) or one long-format file (`path` with `ticker_column`)."""

    # A CSV; relative paths are relative to where the command runs. null with `paths`.
    path: str | None = MISSING
    # A panel of files or glob patterns, one series each, named by the file's stem.
    paths: list[str] | None = None
    date_column: str = "Date"  # the date column (ISO 8601 dates)
    price_column: str | None = None  # None: "Adj Close" when present, else "Close"
    # A panel in long format: the column naming each row's ticker (conf/data/long.yaml).
    ticker_column: str | None = None
    tickers: list[str] | None = None  # a panel: keep only these tickers; None: all
    target: str = "log_return"  # what the model learns: "log_return" or "price"
    # Exchange calendar of forecast dates (exchange_calendars code: XNYS, XLON, ...); None:
    # follow the data's spacing (business days for daily bars; holidays unknown).
    calendar: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.paths is None):
            raise ConfigError(
                "data: set data.path=<csv> (one series, or a long-format panel with "
                "data.ticker_column) or data.paths=[<csv or pattern>, ...] (a panel, one series "
                f"per file, e.g. data=files); got {'both' if self.path else 'neither'}."
            )
        if self.tickers is not None and not self.is_panel:
            raise ConfigError(
                "data.tickers selects series of a panel, but data.path is one series; name the "
                "panel's files with data.paths or its ticker column with data.ticker_column."
            )

    @property
    def is_panel(self) -> bool:
        return self.paths is not None or self.ticker_column is not None

    def load_panel(self) -> Panel:
        return load_panel(
            self.paths if self.paths is not None else [self.path],
            date_column=self.date_column,
            price_column=self.price_column,
            ticker_column=self.ticker_column,
            tickers=self.tickers,
        )


@dataclass
class TrackingConf:
    uri: str = MISSING  # MLflow tracking URI; default $MLFLOW_TRACKING_URI, else mlflow.db
    experiment_name: str = "forecaster"  # created as a model-training experiment
    # Where a new experiment stores artifacts. None: `mlartifacts/` beside a SQLite file, or
    # the server's default for an http(s) URI.
    artifact_location: str | None = None
    run_name: str | None = None  # None: named by the command's overrides, or by MLflow


@dataclass
class EvalConf:
    plot_origins: int = 4  # test forecast origins drawn in plots/forecast.png


@dataclass
class ObjectiveConf:
    """What a sweep optimises: a metric every run logs, and which way is better."""

    metric: str = "best_val_loss"  # any metric a run logs; never select on test metrics
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

    # Scored beside the model on the same test origins (the random walk, naive, always is).
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    # After evaluating, retrain the same configuration on every bar up to the last, for as many
    # epochs as early stopping chose, and log it as its own run linked to the evaluated one:
    # the model to forecast with (a sweep refits only its best run, when all jobs have ended).
    refit_full: bool = False
    # Register the model to forecast with (the refit when refit_full, else the evaluated run's;
    # a sweep's best) as a new version of this registered model, and move register_alias to it.
    register_as: str | None = None
    register_alias: str | None = "champion"  # models:/<register_as>@champion; null: no alias

    def __post_init__(self) -> None:
        super().__post_init__()
        alias = self.register_alias
        # MLflow's rule, checked here so a bad alias fails before training, not after.
        if alias is not None and (
            not re.fullmatch(r"[\w-]+", alias)
            or alias.lower() == "latest"
            or re.fullmatch(r"[vV]\d+", alias)
        ):
            raise ConfigError(
                f"train.register_alias={alias!r}: an alias is letters, digits, '_' and '-', "
                "and neither 'latest' nor v<number> (reserved by MLflow), e.g. champion."
            )
        known = sorted(set(REGISTRY) - set(DEEP_MODELS))
        unknown = [name for name in self.baselines if name not in known]
        if unknown:
            raise ConfigError(
                f"train.baselines={list(self.baselines)!r}: unknown baseline(s) {unknown}; "
                f"choose from {known}."
            )


@dataclass
class ModelAppConf:
    """What every command that fits models takes: the data, the model and its training, the
    store runs are tracked in, and the seed."""

    data: DataConf = field(default_factory=DataConf)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    seed: int = 42  # same seed, data and config: same metrics

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError(
                f"seed={self.seed!r} is invalid: expected an integer from 0 to {MAX_SEED}."
            )


@dataclass
class TrainAppConf(ModelAppConf):
    train: TrainRunConfig = field(default_factory=TrainRunConfig)
    eval: EvalConf = field(default_factory=EvalConf)
    objective: ObjectiveConf = field(default_factory=ObjectiveConf)
    # Each run checkpoints into <checkpoint_dir>/<run id>/ while it trains, so that a stopped
    # run can be continued (`resume`); the directory is deleted when the run finishes. null: no
    # checkpoints, nothing to resume.
    checkpoint_dir: str | None = MISSING
    resume: str | None = None  # a run id, or `last`: continue that run from its checkpoint


@dataclass
class BacktestAppConf(ModelAppConf):
    backtest: BacktestConfig = field(default_factory=BacktestConfig)


@dataclass
class PredictAppConf:
    data: DataConf = field(default_factory=DataConf)
    tracking: TrackingConf = field(default_factory=TrackingConf)
    # Which model (exactly one of run_id, sweep, model_uri):
    run_id: str | None = None  # a run id, or `latest`: the newest finished run with a model
    sweep: str | None = None  # a sweep's parent run id or name; with `pick`
    pick: str = "best"  # the sweep's best run by its objective (its refit, when refit_full)
    model_uri: str | None = None  # any MLflow model URI, e.g. models:/<name>@champion
    warm_start: bool = False  # carry the run's final states over the bars after training
    # CSV path; default predictions/<run id>_<last date>_<cold|warm>.csv. An existing file is
    # never replaced unless overwrite=true.
    output: str | None = None
    overwrite: bool = False
    # A global model and one price file (data.path): the file's ticker. None: the file's stem.
    # A ticker the model was not trained on is forecast cold from its own prices.
    ticker: str | None = None


def check_known_keys(cfg: DictConfig, schema: type, prefix: str = "") -> None:
    """Reject a key the schema does not define. Hydra rejects a misspelt key at compose time,
    but lets `+key=value` append any key; an appended typo must not be ignored silently."""
    known = {f.name: f for f in fields(schema)}
    for key in cfg:
        if key == "hydra" and not prefix:
            continue  # Hydra's own node, in configs composed with return_hydra_config
        if key not in known:
            name = f"{prefix}{key}"
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {prefix}{close[0]}?" if close else ""
            where = f"the {prefix.rstrip('.')} group's keys" if prefix else "the top-level keys"
            raise ConfigError(
                f"unknown config key {name!r}:{hint} {where} are {sorted(known)}. Fix: correct "
                f"or drop the override (+{name}=... adds a key the code would never read)."
            )
        node = cfg[key]
        default = known[key].default_factory() if callable(known[key].default_factory) else None
        if isinstance(node, DictConfig) and is_dataclass(default):
            check_known_keys(node, type(default), f"{prefix}{key}.")


def register() -> None:
    """Register the resolvers, the schemas and our launcher. Idempotent: entry points and tests
    call it."""
    for name, resolver in (("bundled", bundled), ("workspace", workspace)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
    ConfigStore.instance().store(name="train_schema", node=TrainAppConf)
    ConfigStore.instance().store(name="backtest_schema", node=BacktestAppConf)
    ConfigStore.instance().store(name="predict_schema", node=PredictAppConf)
    # Hydra finds plugins by scanning the `hydra_plugins` package, which misses one that an
    # editable install (`pip install -e .`) serves through an import hook: register it by hand.
    from hydra.core.plugins import Plugins

    from hydra_plugins.forecaster_launcher import launchers

    for launcher in launchers():
        Plugins.instance().register(launcher)

"""What shapes a seq2seq model: the `model` config group and the full spec of one graph.

No TensorFlow here: the config schema imports these, and composing a config should not take
TensorFlow's import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from forecaster.data.covariates import check_covariates
from forecaster.errors import ConfigError
from forecaster.models.base import QUANTILE_LEVELS, check_quantile_levels
from forecaster.training.loop import TrainConfig
from forecaster.training.teacher_forcing import TeacherForcing

# How the encoder runs over time (forecaster.models.seq2seq.lstm): the same numbers either way.
ENCODERS = ("fused", "while_loop")
# What the decoder forecasts at each step (forecaster.models.seq2seq.outputs): a point, the
# quantiles at `model.quantiles`, or a Student-t distribution.
OUTPUTS = ("point", "quantiles", "student_t")
# Where a forecast's encoder state comes from (forecaster.models.seq2seq.carry): the `lookback`
# bars up to the origin encoded from zeros, or the state carried over the whole series.
STATES = ("window", "carry")
# A global model's shrinkage toward the random walk (model.shrinkage).
SHRINKAGE = ("none", "global", "per_series")
# A distributional output's interval calibration on the validation part (model.calibration).
CALIBRATIONS = ("none", "scale")


@dataclass
class Seq2SeqConfig:
    """The `model` config group."""

    num_units: int = 64  # LSTM units per layer, encoder and decoder alike
    num_layers: int = 1
    dropout: float = 0.0  # rate on every layer's outputs, training only
    # fused (TensorFlow's BlockLSTM kernel) or while_loop (tf.while_loop + TensorArray): the
    # same numbers; the benchmark (benchmarks/bench.py) chose the default.
    encoder: str = "fused"
    # point: the next value, mean squared error. quantiles: the quantiles at `quantiles` of
    # the cumulative return from the origin, pinball loss. student_t: its location, scale and
    # degrees of freedom, negative log-likelihood. See README, Intervals.
    output: str = "point"
    # The quantile levels every probabilistic forecast reports (the model's, with a
    # distributional output, and the interval baselines'): scored by pinball loss, saved as
    # q<level> columns.
    quantiles: list[float] = field(default_factory=lambda: list(QUANTILE_LEVELS))
    # window: each forecast encodes the `window.lookback` bars up to its origin from a zero
    # state. carry: from the state carried bar by bar over the whole series (evaluation and
    # forecasting; `train.carry=true` also trains that way). See README, Carried state.
    state: str = "window"
    # A distributional output: none keeps the network's quantiles; scale multiplies each step's
    # distances from the median by one factor, chosen after training on the validation part by
    # pinball loss (outputs.fit_interval_scale). See README, Intervals.
    calibration: str = "none"
    # A global model over a panel: the size of a learned per-ticker vector fed, beside the
    # values, to every encoder and decoder step (0: none). A ticker the model was not trained on
    # gets the mean of the trained tickers' vectors.
    ticker_embedding: int = 0
    # A global model: shrink each forecast toward the random walk, price = origin + a * (model's
    # price - origin), with a in [0, 1] chosen on the validation windows by price MAE relative to
    # the random walk: "none" (a = 1), "global" (one a), "per_series" (one a per ticker; a new
    # ticker gets the global one).
    shrinkage: str = "none"
    # A global model: false scales each series' log returns by their training std only, without
    # subtracting their training mean, so the model is not handed each series' training drift
    # to extrapolate.
    demean: bool = True
    # A global model: what it reads besides each series' own values (forecaster.data.covariates):
    # past covariates into the encoder (volatility, volume, range, tickers) and known-future
    # ones into the decoder (calendar). [] (none) is the measured default (experiments/README.md).
    covariates: list[str] = field(default_factory=list)
    # The bars of the realised volatility covariate (its log returns' std up to each bar).
    volatility_window: int = 20

    def __post_init__(self) -> None:
        _check("model.num_units", self.num_units, _positive_int, "an integer >= 1")
        _check("model.num_layers", self.num_layers, _positive_int, "an integer >= 1")
        _check("model.dropout", self.dropout, lambda v: 0.0 <= v < 1.0, "a rate in [0, 1)")
        _check("model.encoder", self.encoder, lambda v: v in ENCODERS, f"one of {ENCODERS}")
        _check("model.output", self.output, lambda v: v in OUTPUTS, f"one of {OUTPUTS}")
        check_quantile_levels(self.quantiles, "model.quantiles")
        _check("model.state", self.state, lambda v: v in STATES, f"one of {STATES}")
        _check(
            "model.ticker_embedding",
            self.ticker_embedding,
            lambda v: v == 0 or _positive_int(v),
            "0 (off) or an integer >= 1",
        )
        _check("model.shrinkage", self.shrinkage, lambda v: v in SHRINKAGE, f"one of {SHRINKAGE}")
        check_covariates(list(self.covariates))
        _check(
            "model.volatility_window",
            self.volatility_window,
            lambda v: _positive_int(v) and v >= 2,
            "an integer >= 2",
        )
        _check(
            "model.calibration",
            self.calibration,
            lambda v: v in CALIBRATIONS,
            f"one of {CALIBRATIONS}",
        )
        if self.calibration != "none" and self.output == "point":
            raise ConfigError(
                f"model.calibration={self.calibration} calibrates the intervals of a "
                "distributional output, and model.output=point forecasts none. Fix: set "
                "model.output=quantiles (or student_t), or model.calibration=none."
            )


@dataclass(frozen=True)
class ModelSpec:
    """Everything that shapes one graph; defaults are the config groups' defaults."""

    horizon: int  # window.horizon
    num_features: int = 1
    num_units: int = Seq2SeqConfig.num_units
    num_layers: int = Seq2SeqConfig.num_layers
    dropout: float = Seq2SeqConfig.dropout
    encoder: str = Seq2SeqConfig.encoder
    output: str = Seq2SeqConfig.output
    quantiles: tuple[float, ...] = QUANTILE_LEVELS
    learning_rate: float = TrainConfig.learning_rate
    clip_norm: float = TrainConfig.clip_norm
    ticker_embedding: int = 0  # model.ticker_embedding
    num_tickers: int = 0  # rows of the embedding: the tickers trained on
    num_future: int = 0  # known-future covariates per decoder step (model.covariates)
    # The decoder's inputs in training: the true previous values (1.0 throughout, the fused
    # teacher-forced path) or a schedule (training.teacher_forcing) mixing in its own predictions.
    teacher_forcing: TeacherForcing = TeacherForcing()

    def __post_init__(self) -> None:
        _check("window.horizon", self.horizon, _positive_int, "an integer >= 1")
        _check("num_features", self.num_features, _positive_int, "an integer >= 1")
        _check("num_future", self.num_future, lambda v: v == 0 or _positive_int(v), "an int >= 0")
        Seq2SeqConfig(
            self.num_units,
            self.num_layers,
            self.dropout,
            self.encoder,
            self.output,
            list(self.quantiles),
            ticker_embedding=self.ticker_embedding,
        )
        for key in ("learning_rate", "clip_norm"):
            value = getattr(self, key)
            _check(f"train.{key}", value, lambda v: math.isfinite(v) and v > 0, "a number > 0")
        if self.output != "point" and not self.teacher_forcing.always:
            raise ConfigError(
                f"train.teacher_forcing (scheduled sampling) applies to model.output=point; "
                f"model.output={self.output} already trains free-running on the median path it "
                "forecasts with. Fix: drop the train.teacher_forcing override, or use "
                "model.output=point."
            )
        if self.ticker_embedding and not _positive_int(self.num_tickers):
            raise ConfigError(
                "model.ticker_embedding needs the tickers to embed: train a global model on a "
                "panel (data=panel), or set model.ticker_embedding=0."
            )

    @classmethod
    def of(
        cls,
        horizon: int,
        model: Seq2SeqConfig,
        train: TrainConfig,
        num_features: int = 1,
        num_tickers: int = 0,
        num_future: int = 0,
    ) -> ModelSpec:
        """The spec of `model` and `train`; the ticker embedding only for a global model
        (`num_tickers` > 0)."""
        return cls(
            horizon=horizon,
            num_features=num_features,
            num_units=model.num_units,
            num_layers=model.num_layers,
            dropout=model.dropout,
            encoder=model.encoder,
            output=model.output,
            quantiles=tuple(float(level) for level in model.quantiles),
            learning_rate=train.learning_rate,
            clip_norm=train.clip_norm,
            ticker_embedding=model.ticker_embedding if num_tickers else 0,
            num_tickers=num_tickers if model.ticker_embedding else 0,
            teacher_forcing=train.teacher_forcing_schedule(),
            num_future=num_future,
        )


def _positive_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1


def _check(key: str, value, ok, expected: str) -> None:
    if not ok(value):
        raise ConfigError(f"{key}={value!r} is invalid: expected {expected}.")

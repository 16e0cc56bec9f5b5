"""forecaster from Python, without Hydra: a scikit-learn-style estimator for notebooks.

    from forecaster.api import Forecaster
    model = Forecaster(horizon=5, num_units=64, epochs=30).fit(prices)  # a dated Series
    model.metrics_["test_mae"], model.predict()                          # a tidy frame

Every constructor argument is one config key of `python -m forecaster train`, under its leaf
name (`PARAMETERS` maps each to its key: `horizon` is `window.horizon`, `num_units` is
`model.num_units`, `epochs` is `train.epochs`, ...), with the same default; the names and
defaults are read from the schema dataclasses, so they cannot drift from the CLI. `fit` splits
by time, trains, and scores the model against the baselines on the test origins, as `train`
does; `predict` forecasts after the last bar; `backtest` walks the model and the baselines
forward; `save`/`load` keep the fitted model as a directory; `to_mlflow` logs it as a run.

This module is the layer above tracking and below the CLI: it imports neither Hydra nor MLflow
itself, and loads TensorFlow and MLflow only inside the methods that use them. The CLI builds its
baselines here (`baseline`).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecaster.data.io import PriceSeries
from forecaster.data.panel import Panel
from forecaster.data.splits import WindowConfig
from forecaster.evaluation.probabilistic import scoring_levels
from forecaster.models import PROBABILISTIC_BASELINES, create
from forecaster.models.base import QUANTILE_LEVELS
from forecaster.models.base import Forecaster as ForecasterProtocol
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.training.loop import Callback, TrainConfig
from forecaster.training.stopping import StopRequest

log = logging.getLogger(__name__)

DEFAULT_BASELINES = ("naive", "drift", "ridge")  # train.baselines
PARAMS_FILE = "params.json"
METRICS_FILE = "metrics.json"
MODEL_DIR = "exported_model"


@dataclass(frozen=True)
class Parameter:
    name: str  # the constructor argument
    key: str  # the config key of `python -m forecaster train`
    default: Any


def _schema_parameters() -> dict[str, Parameter]:
    found: dict[str, Parameter] = {}
    groups = (("window", WindowConfig), ("model", Seq2SeqConfig), ("train", TrainConfig))
    for group, schema in groups:
        for f in fields(schema):
            default = f.default if f.default is not MISSING else f.default_factory()
            found[f.name] = Parameter(f.name, f"{group}.{f.name}", default)
    extra = [
        Parameter("quantiles", "model.quantiles", list(QUANTILE_LEVELS)),
        Parameter("baselines", "train.baselines", list(DEFAULT_BASELINES)),
        Parameter("target", "data.target", "log_return"),
        Parameter("calendar", "data.calendar", None),
        Parameter("seed", "seed", 42),
    ]
    return found | {p.name: p for p in extra}


PARAMETERS: dict[str, Parameter] = _schema_parameters()


def baseline(
    name: str, window: WindowConfig, quantiles: Sequence[float], seed: int
) -> ForecasterProtocol:
    """Baseline `name` for `window`. Probabilistic baselines forecast the reported `quantiles`
    (`model.quantiles`) and the dense grid the CRPS is integrated on; GARCH's simulations are
    seeded by the run's `seed`."""
    params: dict = {"horizon": window.horizon}
    if name in ("ridge", "rw_normal"):
        params["lookback"] = window.lookback
    if name in PROBABILISTIC_BASELINES:
        params["quantiles"] = scoring_levels(quantiles)
    if name == "garch_t":
        params["seed"] = seed
    return create(name, **params)


class Forecaster:
    """The seq2seq LSTM with its baselines, configured by keyword (see `PARAMETERS`)."""

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise TypeError(
                f"Forecaster got unknown parameter(s) {unknown}; it takes {sorted(PARAMETERS)} "
                "(each the config key of the same leaf name: Forecaster.PARAMETERS)"
            )
        for name, parameter in PARAMETERS.items():
            setattr(self, name, params.get(name, parameter.default))

    PARAMETERS = PARAMETERS

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in PARAMETERS}

    def set_params(self, **params: Any) -> Forecaster:
        merged = self.get_params() | params
        self.__init__(**merged)
        return self

    def config(self) -> dict[str, Any]:
        """The parameters as the nested config `python -m forecaster train` runs with."""
        nested: dict[str, Any] = {}
        for name, parameter in PARAMETERS.items():
            *groups, leaf = parameter.key.split(".")
            node = nested
            for group in groups:
                node = node.setdefault(group, {})
            node[leaf] = getattr(self, name)
        return nested

    def overrides(self) -> list[str]:
        """The command-line overrides that train the same model with `python -m forecaster`."""
        changed = [(p.key, getattr(self, p.name)) for p in PARAMETERS.values()]
        return [
            f"{key}={json.dumps(value) if isinstance(value, list | tuple) else value}"
            for (key, value), p in zip(changed, PARAMETERS.values(), strict=True)
            if value != p.default
        ]

    def _groups(self) -> tuple[WindowConfig, Seq2SeqConfig, TrainConfig]:
        """The schema dataclasses, which check every value."""

        def of(schema):
            return schema(**{f.name: getattr(self, f.name) for f in fields(schema)})

        return of(WindowConfig), of(Seq2SeqConfig), of(TrainConfig)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Forecaster:
        """The Forecaster a nested `python -m forecaster train` config describes (the inverse of
        `config()`): each parameter read from its key; keys the API does not take (tracking,
        data paths, ...) are ignored."""
        params = {}
        for name, parameter in PARAMETERS.items():
            node: Any = config
            for part in parameter.key.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    break
                node = node[part]
            else:
                params[name] = node
        return cls(**params)

    # -- fitting --------------------------------------------------------------------------------
    def fit(
        self,
        prices: pd.Series | pd.DataFrame | str | Path | PriceSeries,
        *,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        stop_request: StopRequest | None = None,
        resume: bool = False,
    ) -> Forecaster:
        """Split `prices` by time, train on the training part (early stopping on validation),
        and score the model and the baselines on the test origins (`metrics_`, `evaluation_`).

        `prices`: a Series of prices on a DatetimeIndex, a one-column DataFrame, a CSV path
        (read by the same validator as the CLI), or a `PriceSeries` already loaded. For long
        runs: `callbacks` see every epoch (training.Callback), `checkpoint_dir` keeps a
        checkpoint per epoch, which `resume=True` continues from, and `stop_request` stops
        training at the next batch."""
        from forecaster.data import time_split
        from forecaster.data.timestamps import calendar_mismatch, check_calendar
        from forecaster.evaluation import evaluate
        from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster

        self.close()
        check_calendar(self.calendar)
        training = {
            "callbacks": list(callbacks),
            "checkpoint_dir": checkpoint_dir,
            "stop_request": stop_request,
        }
        panel = _panel(prices)
        if panel is not None:
            return self._fit_panel(panel, training, resume)
        self.series_, prices = _prices(prices)
        self.panel_ = None
        for message in calendar_mismatch(prices.index, self.calendar):
            log.warning("%s", message)
        window, model, train = self._groups()
        split = time_split(prices, window, self.target)
        log.info(
            "%s: %d bars; train to %s, validation to %s, %d test origins",
            self.series_.path.name if self.series_ is not None else "prices",
            len(prices),
            f"{split.train_end:%Y-%m-%d}",
            f"{split.val_end:%Y-%m-%d}",
            len(split.test_origins(window.horizon)),
        )
        network = Seq2SeqForecaster(
            window=window, model=model, train=train, target=self.target, seed=self.seed, **training
        )
        try:
            network.fit(split.train(prices), split.val(prices), resume=resume)
            baselines = {b: baseline(b, window, self.quantiles, self.seed) for b in self.baselines}
            self.evaluation_ = evaluate(network, prices, split, baselines, self.quantiles)
        except BaseException:
            network.close()
            raise
        self.network_, self.prices_, self.split_ = network, prices, split
        self.history_ = network.history_
        self.metrics_ = {"best_val_loss": self.history_.best_val_loss} | (
            self.evaluation_.tracked_metrics
        )
        return self

    def _fit_panel(self, panel: Panel, training: dict[str, Any], resume: bool) -> Forecaster:
        """One global model over every series of `panel`, scored on each series' test part
        beside the baselines (`test_per_series_`, `test_summary_`; `metrics_` the summary)."""
        from forecaster.data.panel import panel_split
        from forecaster.evaluation.panel_scores import score_panel, summarise_panel, summary_metrics
        from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster

        window, model, train = self._groups()
        split = panel_split(panel, window, self.target)
        log.info(
            "%d series; train to %s, validation to %s, test after",
            len(panel),
            f"{split.train_end:%Y-%m-%d}",
            f"{split.val_end:%Y-%m-%d}",
        )
        network = GlobalSeq2SeqForecaster(
            window=window, model=model, train=train, target=self.target, seed=self.seed, **training
        )
        try:
            network.fit_panel(panel, split, resume=resume)
            table = score_panel(
                network.for_series,
                panel,
                split,
                lambda: {b: baseline(b, window, self.quantiles, self.seed) for b in self.baselines},
                network.shrinkage_of,
            )
        except BaseException:
            network.close()
            raise
        self.network_, self.panel_, self.split_ = network, panel, split
        self.series_, self.prices_ = None, None
        self.history_ = network.history_
        self.test_per_series_, self.test_summary_ = table, summarise_panel(table)
        self.metrics_ = {
            "best_val_loss": self.history_.best_val_loss,
            "best_epoch": self.history_.best_epoch,
        } | summary_metrics(self.test_summary_)
        return self

    def close(self) -> None:
        """Free the fitted model's TensorFlow session (it is refitted or loaded afresh)."""
        for name in ("network_", "exported_"):
            model = self.__dict__.pop(name, None)
            if model is not None:
                model.close()

    def __enter__(self) -> Forecaster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- forecasting ----------------------------------------------------------------------------
    def predict(
        self,
        prices: pd.Series | pd.DataFrame | str | Path | PriceSeries | None = None,
        ticker: str | None = None,
    ) -> pd.DataFrame:
        """Forecast the `horizon` bars after the last of `prices` (default: the series `fit`
        saw). A tidy frame, one row per step: `date` (on `calendar`'s sessions when set, else
        the data's spacing), `step`, `forecast` (the price), and `q<level>` columns when the
        model forecasts quantiles. A model fitted on a panel forecasts every ticker it was
        fitted on (a `ticker` column first), or `prices` as `ticker`'s (a ticker it was not
        fitted on, or None, is forecast cold from its own prices)."""
        from forecaster.data.timestamps import future_dates

        if "network_" not in self.__dict__ and "exported_" not in self.__dict__:
            raise RuntimeError("this Forecaster is not fitted: call fit(prices) or load(path)")
        if self.__dict__.get("panel_") is not None:
            return self._predict_panel(prices, ticker)
        prices = self.prices_ if prices is None else _prices(prices)[1]
        if "exported_" in self.__dict__:
            points, quantiles, levels = self.exported_.forecast(prices).prices, None, None
        else:
            forecast = self.network_.predict(prices, np.array([len(prices) - 1]))
            points, levels = forecast.prices[0], forecast.quantile_levels
            quantiles = None if forecast.quantiles is None else forecast.quantiles[0]
        frame = pd.DataFrame(
            {
                "date": future_dates(prices.index, len(points), self.calendar),
                "step": np.arange(1, len(points) + 1),
                "forecast": points,
            }
        )
        for k, level in enumerate(levels or ()):
            frame[f"q{level:g}"] = quantiles[:, k]
        return frame

    def _predict_panel(self, prices, ticker: str | None) -> pd.DataFrame:
        """A global model's forecasts: every trained ticker's after its last bar (a `ticker`
        column first), or, given `prices`, theirs as `ticker`'s (None: a new ticker, cold)."""
        from forecaster.data.timestamps import future_dates

        if prices is None:
            frames = [self._predict_panel(self.panel_.prices(t), t) for t in self.panel_.tickers]
            return pd.concat(frames, ignore_index=True)
        prices = _prices(prices)[1]
        forecast = self.network_.predict(prices, np.array([len(prices) - 1]), ticker)
        points = forecast.prices[0]
        return pd.DataFrame(
            {
                "ticker": ticker,
                "date": future_dates(prices.index, len(points), self.calendar),
                "step": np.arange(1, len(points) + 1),
                "forecast": points,
            }
        )

    def backtest(self, **backtest: Any) -> pd.DataFrame:
        """Walk the model and its baselines forward through the last part of the fitted series
        (`backtest` keys as `python -m forecaster backtest` takes them: start, test_fraction,
        stride, refit_every, ...); the summary table, one row per model."""
        from forecaster.evaluation.backtest import BacktestConfig, summary, walk_forward
        from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster

        if self.__dict__.get("prices_") is None:
            raise RuntimeError(
                "backtest walks the one series fit saw: call fit(prices) first (a panel is "
                "walked forward by `python -m forecaster backtest data=panel`)"
            )
        window, model, train = self._groups()
        names = ["seq2seq", *(b for b in self.baselines if b != "naive"), "naive"]
        config = BacktestConfig(**({"models": names} | backtest))

        def factory(name: str):
            if name == "seq2seq":
                return lambda: Seq2SeqForecaster(
                    window=window, model=model, train=train, target=self.target, seed=self.seed
                )
            return lambda: baseline(name, window, self.quantiles, self.seed)

        models = {name: factory(name) for name in config.models}
        result = walk_forward(
            self.prices_, models, config, self.horizon, reported_levels=self.quantiles
        )
        return summary(result)

    # -- keeping ----------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """The fitted model as a directory: the exported model (what `predict` runs and MLflow
        serves), the parameters and the test metrics."""
        if "network_" not in self.__dict__:
            raise RuntimeError("save needs a fitted Forecaster: call fit(prices) first")
        path = Path(path)
        self.export(path / MODEL_DIR)
        (path / PARAMS_FILE).write_text(json.dumps(self.get_params(), indent=2))
        (path / METRICS_FILE).write_text(json.dumps(self.metrics_, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """A Forecaster `save` wrote: it predicts (give it the recent prices); to backtest or
        log it again, fit it."""
        from forecaster.serving import ExportedForecaster

        path = Path(path)
        model = cls(**json.loads((path / PARAMS_FILE).read_text()))
        model.metrics_ = json.loads((path / METRICS_FILE).read_text())
        model.exported_ = ExportedForecaster(path / MODEL_DIR)
        return model

    def _columns(self) -> tuple[str, str]:
        """(date column, price column) a served model reads: the file's, or the Series'."""
        if getattr(self, "panel_", None) is not None:
            first = self.panel_.series[0]
            return first.date_column, first.price_column
        if self.series_ is not None:
            return self.series_.date_column, self.series_.price_column
        return str(self.prices_.index.name or "Date"), str(self.prices_.name or "Close")

    def input_example(self) -> pd.DataFrame:
        """What the served model reads: the last `lookback + 1` bars in the columns it was
        fitted on (of the first ticker, with a `ticker` column, for a panel model)."""
        date, price = self._columns()
        panel = getattr(self, "panel_", None)
        recent = (self.prices_ if panel is None else panel.series[0].prices).iloc[
            -(self.lookback + 1) :
        ]
        example = pd.DataFrame({date: recent.index, price: recent.to_numpy()})
        return example if panel is None else example.assign(ticker=panel.tickers[0])

    def export(self, directory: str | Path) -> Path:
        """The fitted model as an inference-only SavedModel with its preprocessing (what MLflow
        serves), reading the price and date columns the model was fitted on."""
        if "network_" not in self.__dict__:
            raise RuntimeError("export needs a fitted Forecaster: call fit(prices) first")
        date, price = self._columns()
        if getattr(self, "panel_", None) is not None:
            return self.network_.export(directory, price_column=price, date_column=date)
        return self.network_.export(
            directory, price_column=price, date_column=date, calendar=self.calendar
        )

    def to_mlflow(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "forecaster",
        run_name: str | None = None,
    ) -> str:
        """Log the fitted model as an MLflow run (parameters under their config keys, test
        metrics, learning curve, the price file as the dataset when `fit` read one, the model as
        `model`); return the run id. `tracking_uri`: default MLFLOW_TRACKING_URI, else
        `mlflow.db` where the CLI keeps it."""
        import math
        import os
        import tempfile

        from forecaster.paths import workspace
        from forecaster.tracking import TrackedRun
        from forecaster.tracking.ui import RUNS_TABLE

        if "network_" not in self.__dict__:
            raise RuntimeError("to_mlflow needs a fitted Forecaster: call fit(prices) first")
        uri = (
            tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{workspace('mlflow.db')}"
        )
        with TrackedRun(uri, experiment_name, run_name=run_name) as run:
            config = self.config()
            run.log_config(config, json.dumps(config, indent=2))
            if self.series_ is not None:
                run.log_data_source(self.series_, context="training")
            history = self.history_
            for epoch, (train_loss, val_loss) in enumerate(
                zip(
                    history.train_loss,
                    history.val_loss or [math.nan] * history.epochs,
                    strict=True,
                ),
                1,
            ):
                run.log_metrics({"train_loss": train_loss, "val_loss": val_loss}, step=epoch)
            run.log_metrics(self.metrics_ | {"best_epoch": history.best_epoch})
            with tempfile.TemporaryDirectory() as tmp:
                exported = self.export(Path(tmp) / MODEL_DIR)
                run.log_model(exported, self.input_example())
            run.runs_table(RUNS_TABLE)
            return run.run_id


def _panel(prices: Any) -> Panel | None:
    """The panel `prices` is (a Panel, a long frame with a `ticker` column, or a wide frame of
    several price columns), or None for one series."""
    from forecaster.data.panel import panel_from_frame

    if isinstance(prices, Panel):
        return prices
    if isinstance(prices, pd.DataFrame) and ("ticker" in prices.columns or prices.shape[1] > 1):
        return panel_from_frame(prices)
    return None


def _prices(prices: pd.Series | pd.DataFrame | str | Path | PriceSeries):
    """(the PriceSeries when read from a file, else None; the validated price Series)."""
    from forecaster.data.io import load_prices, prices_from_frame

    if isinstance(prices, PriceSeries):
        return prices, prices.prices
    if isinstance(prices, (str, Path)):
        series = load_prices(prices)
        return series, series.prices
    if isinstance(prices, pd.DataFrame):
        prices = prices.iloc[:, 0]  # one column: several are a panel (`_panel`)
    if not isinstance(prices, pd.Series):
        raise TypeError(
            f"prices must be a pandas Series, DataFrame or CSV path, got {type(prices).__name__}"
        )
    if not isinstance(prices.index, pd.DatetimeIndex):
        raise ValueError(
            "prices need a DatetimeIndex (the bars' dates): e.g. "
            "pd.read_csv(path, parse_dates=['Date'], index_col='Date')['Close']"
        )
    name = str(prices.name or "price")
    frame = prices.rename(name).rename_axis("Date").reset_index()
    return None, prices_from_frame(frame, date_column="Date", price_column=name)


# help(Forecaster) and scikit-learn's get_params see every parameter with its default.
Forecaster.__init__.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [
        inspect.Parameter(p.name, inspect.Parameter.KEYWORD_ONLY, default=p.default)
        for p in PARAMETERS.values()
    ]
)

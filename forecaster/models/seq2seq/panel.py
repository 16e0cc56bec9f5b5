"""One seq2seq over every series of a panel (a global model), as in DeepAR and N-BEATS.

`fit_panel` cuts every series at one calendar split (`forecaster.data.panel_windows`): each
series' scaler is fitted on its own training dates only, and no series' validation or test dates
reach any training window. The windows of all series are trained together, shuffled, each with
its ticker's index when `model.ticker_embedding` > 0. The encoder -> decoder (c, h) hand-off is
the single-series model's.

`predict(prices, origins, ticker)` forecasts a trained ticker with its scaler and embedding, and
any other series cold: its scaler fitted on its own prices up to the first origin, its embedding
the mean of the trained tickers'. `for_series(ticker)` is the model protocol for one series, what
a backtest scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from forecaster.data.covariates import (
    CALENDAR_FEATURES,
    FeatureScaler,
    calendar_features,
    forecast_calendar,
    series_features,
    window_rows,
)
from forecaster.data.panel import Panel, PanelSplit
from forecaster.data.panel_windows import (
    PanelDataset,
    PanelWindowSet,
    ReturnScalers,
    make_panel_windows,
    scaled_aligned_returns,
)
from forecaster.data.splits import WindowConfig, check_target, target_offset
from forecaster.data.windows import Scaler, forecast_to_prices, target_series, window_inputs
from forecaster.errors import ConfigError, DataError
from forecaster.models.base import Forecast, check_fitted, check_origins
from forecaster.models.seq2seq.export import Preprocessing, export_model
from forecaster.models.seq2seq.inputs import UNKNOWN_TICKER
from forecaster.models.seq2seq.network import Inputs, OwnsNetwork, Seq2SeqModel, WindowInputs
from forecaster.models.seq2seq.spec import ModelSpec, Seq2SeqConfig
from forecaster.training import Callback, EarlyStopping, TrainConfig, Trainer
from forecaster.training.stopping import StopRequest

# Factors toward the random walk `model.shrinkage` chooses from: 0 (the random walk) to 1.
SHRINKAGE_GRID = np.linspace(0.0, 1.0, 21)


class _Windows:
    """What the training loop batches: inputs (with tickers) and targets."""

    def __init__(self, inputs: Inputs, targets: np.ndarray) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return len(self.targets)


def cold_scaler(prices: pd.Series, last: int, target: str, demean: bool = True) -> Scaler:
    """The scaler of a series the model was not trained on: fitted on its own target values up
    to position `last` (an origin), nothing later (its mean kept at 0 unless `demean`)."""
    scaler = Scaler.fit(target_series(prices.iloc[: last + 1], target).to_numpy())
    return scaler if demean else Scaler(0.0, scaler.std)


def _undo_mean(windows: PanelWindowSet, dataset: PanelDataset) -> PanelWindowSet:
    """`windows` scaled by each series' std only: (v - mean) / std + mean / std."""
    scalers = [dataset.scalers[t] for t in dataset.tickers]
    shift = np.array([s.mean / s.std for s in scalers], dtype=np.float32)
    rows = shift[windows.ticker_index]
    return replace(
        windows,
        inputs=windows.inputs + rows[:, np.newaxis, np.newaxis],
        targets=windows.targets + rows[:, np.newaxis],
    )


class GlobalSeq2SeqForecaster(OwnsNetwork):
    def __init__(
        self,
        *,
        window: WindowConfig | None = None,
        model: Seq2SeqConfig | None = None,
        train: TrainConfig | None = None,
        target: str = "log_return",
        seed: int = 0,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        stop_request: StopRequest | None = None,
    ) -> None:
        check_target(target)
        if model is not None and model.calibration != "none":
            raise ConfigError(
                f"model.calibration={model.calibration} calibrates a single-series model's "
                "intervals; the global model over a panel forecasts points. Fix: set "
                "model.calibration=none."
            )
        self.window = window or WindowConfig()
        self.model = model or Seq2SeqConfig()
        self.train = train or TrainConfig()
        if self.model.state == "carry" or self.train.carry:
            raise ConfigError(
                "model.state=carry and train.carry=true (the encoder state carried over a "
                "series) are built for a single-series model; the global model over a panel "
                "forecasts and trains on windows: leave model.state=window and train.carry=false."
            )
        self.target = target
        self.seed = seed
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.stop_request = stop_request  # asks training to stop at a batch boundary
        self.horizon = self.window.horizon
        self.network_: Seq2SeqModel | None = None

    @property
    def min_history(self) -> int:
        return self.window.lookback + target_offset(self.target)

    def fit_panel(self, panel: Panel, split: PanelSplit, *, resume: bool = False) -> Self:
        """Train on the training windows of every series of `panel` cut at `split`, early-stopping
        on all their validation windows. `resume=True` continues from `checkpoint_dir`."""
        w = self.window
        dataset = make_panel_windows(
            panel,
            split,
            lookback=w.lookback,
            horizon=w.horizon,
            stride=w.stride,
            target=self.target,
        )
        self.tickers_ = dataset.tickers
        self.split_ = split
        self.context_ = panel  # what `predict` reads covariates from unless given another
        train, val = dataset.part("train"), dataset.part("val")
        self.scalers_ = dataset.scalers
        if not self.model.demean:
            self.scalers_ = {t: Scaler(0.0, s.std) for t, s in self.scalers_.items()}
            train, val = _undo_mean(train, dataset), _undo_mean(val, dataset)
        covariates = self.model.covariates
        self.feature_scalers_ = {}
        if "tickers" in covariates:
            self.return_scalers_ = ReturnScalers.fit(panel, split.train_end)
        past = {}
        for s in panel.series if set(covariates) - {"calendar"} else ():
            features = series_features(
                s.prices, s.bar_fields, covariates, self.model.volatility_window
            )
            scaler = FeatureScaler.fit(features, dataset.datasets[s.ticker].split.train_stop)
            self.feature_scalers_[s.ticker] = scaler
            past[s.ticker] = self._past(s.prices, features, scaler, panel)
        train_inputs = self._window_inputs(train, dataset, past)
        val_inputs = self._window_inputs(val, dataset, past)
        spec = ModelSpec.of(
            w.horizon,
            self.model,
            self.train,
            num_features=train_inputs.values.shape[2],
            num_tickers=len(self.tickers_),
            num_future=len(CALENDAR_FEATURES) if "calendar" in covariates else 0,
        )
        self._prepare_network(spec)
        self.network_.steps_per_epoch = math.ceil(len(train) / self.train.batch_size)
        trainer = Trainer(
            self.network_,
            self.train,
            seed=self.seed,
            callbacks=[*self.callbacks, EarlyStopping(self.train.patience)],
            checkpoint_dir=self.checkpoint_dir,
            stop_request=self.stop_request,
        )
        self.history_ = trainer.fit(
            _Windows(train_inputs, train.targets),
            _Windows(val_inputs, val.targets),
            resume=resume,
        )
        self.shrinkage_, self.default_shrinkage_ = self._choose_shrinkage(val, val_inputs)
        return self

    def _past(
        self, prices: pd.Series, features: pd.DataFrame, scaler: FeatureScaler, context: Panel
    ) -> np.ndarray:
        """``[bars, C]`` float32: the past covariates of every bar of `prices` (scaled; the
        other tickers' returns from `context`), C = 0 without past covariates."""
        blocks = [scaler.transform(features)]
        if "tickers" in self.model.covariates:
            blocks.append(scaled_aligned_returns(context, prices.index, self.return_scalers_))
        return np.concatenate(blocks, axis=1)

    def _window_inputs(
        self, windows: PanelWindowSet, dataset: PanelDataset, past: dict[str, np.ndarray]
    ) -> WindowInputs:
        """`windows` with each bar's past covariates appended to its value, the calendar of
        each target's date (known ahead for a trading calendar) and each window's ticker."""
        lookback = self.window.lookback
        values = windows.inputs
        columns = next(iter(past.values())).shape[1] if past else 0
        future = None
        if columns:
            extra = np.empty((len(windows), lookback, columns), np.float32)
        if "calendar" in self.model.covariates:
            future = np.empty((len(windows), self.horizon, len(CALENDAR_FEATURES)), np.float32)
        for index, ticker in enumerate(self.tickers_):
            rows = windows.ticker_index == index
            origins = windows.origin_index[rows]
            if columns:
                extra[rows] = window_rows(past[ticker], origins, lookback)
            if future is not None:
                dates = dataset.datasets[ticker].prices.index
                steps = origins[:, np.newaxis] + np.arange(1, self.horizon + 1)
                future[rows] = calendar_features(dates[steps.ravel()]).reshape(
                    len(origins), self.horizon, -1
                )
        if columns:
            values = np.concatenate([values, extra], axis=2)
        tickers = windows.ticker_index if self.model.ticker_embedding else None
        return WindowInputs(values, tickers, future)

    def _choose_shrinkage(
        self, val: PanelWindowSet, inputs: WindowInputs
    ) -> tuple[dict[str, float], float]:
        """`model.shrinkage`: the factor(s) toward the random walk that minimise the validation
        windows' price MAE relative to the random walk's (the geometric mean over series for
        one global factor, each series' own ratio for per-series factors)."""
        if self.model.shrinkage == "none":
            return dict.fromkeys(self.tickers_, 1.0), 1.0
        scaled = np.concatenate(
            [
                self.network_.forecast(inputs[k : k + 4096]).forecast
                for k in range(0, len(val), 4096)
            ]
        )
        model_prices = np.empty_like(val.actual_prices)
        for index, ticker in enumerate(self.tickers_):
            rows = val.ticker_index == index
            model_prices[rows] = forecast_to_prices(
                scaled[rows], val.origin_prices[rows], self.scalers_[ticker], self.target
            )
        origin = val.origin_prices[:, np.newaxis]
        naive_error = np.abs(val.actual_prices - origin)
        ratios = np.empty((len(self.tickers_), len(SHRINKAGE_GRID)))
        for index in range(len(self.tickers_)):
            rows = val.ticker_index == index
            for g, a in enumerate(SHRINKAGE_GRID):
                shrunk = origin[rows] + a * (model_prices[rows] - origin[rows])
                error = np.abs(val.actual_prices[rows] - shrunk).mean()
                ratios[index, g] = error / naive_error[rows].mean()
        overall = float(SHRINKAGE_GRID[np.argmin(np.log(ratios).mean(axis=0))])
        if self.model.shrinkage == "global":
            return dict.fromkeys(self.tickers_, overall), overall
        each = SHRINKAGE_GRID[np.argmin(ratios, axis=1)]
        return {t: float(a) for t, a in zip(self.tickers_, each, strict=True)}, overall

    def describe_fit(self) -> str:
        """The fit in a line: best epoch, and the shrinkage toward the random walk chosen."""
        check_fitted(self, "network_")
        line = f"best epoch {self.history_.best_epoch}"
        if self.model.shrinkage == "global":
            line += f", shrinkage factor {self.default_shrinkage_:.2f}"
        elif self.model.shrinkage == "per_series":
            factors = ", ".join(f"{t} {a:.2f}" for t, a in self.shrinkage_.items())
            line += f", shrinkage factors {factors} (new tickers {self.default_shrinkage_:.2f})"
        return line

    def shrinkage_of(self, ticker: str | None) -> float:
        """The factor toward the random walk `ticker`'s forecasts get (1.0: none)."""
        return self.shrinkage_.get(ticker, self.default_shrinkage_)

    def _prepare_network(self, spec: ModelSpec) -> None:
        """A network in its initial state: the last one reset when the spec, seed, threads and
        precision match (a backtest refits once per fold), else a new one."""
        threads = (self.train.intra_op_threads, self.train.inter_op_threads)
        network = self.network_
        if network is not None and (
            network.spec,
            network.seed,
            network.threads,
            network.precision,
        ) == (spec, self.seed, threads, self.train.precision):
            network.reset()
            return
        self.close()
        self.network_ = Seq2SeqModel(
            spec,
            seed=self.seed,
            intra_op_threads=threads[0],
            inter_op_threads=threads[1],
            precision=self.train.precision,
        )

    def _covariates(
        self,
        prices: pd.Series,
        origins: np.ndarray,
        ticker: str | None,
        context: Panel | None,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The past covariates [n, lookback, C] (None without) and the decoder's calendar
        [n, H, 5] (None without) of forecasts of `prices` from `origins`. A trained ticker's
        features are scaled as in training; another series' on its own bars up to the first
        origin. Volume and high/low come from `context`'s series of `ticker` (absent for a
        series not in it), other tickers' returns from `context`'s tickers."""
        covariates = self.model.covariates
        future = (
            forecast_calendar(prices.index, origins, self.horizon)
            if "calendar" in covariates
            else None
        )
        if not (set(covariates) - {"calendar"}):
            return None, future
        context = self.context_ if context is None else context
        last_origin = prices.index[int(origins.max())]
        if context.calendar[-1] < last_origin and (
            "tickers" in covariates or {"volume", "range"} & set(covariates)
        ):
            raise DataError(
                f"model.covariates={list(covariates)} reads other tickers' returns or bar "
                f"fields on the dates forecast from, but the panel given ends on "
                f"{context.calendar[-1]:%Y-%m-%d}, before the origin dated "
                f"{last_origin:%Y-%m-%d}. Fix: pass predict(..., context=<the panel up to the "
                "origins>)."
            )
        bar_fields = context[ticker].bar_fields if ticker in context.tickers else None
        features = series_features(prices, bar_fields, covariates, self.model.volatility_window)
        if self.knows(ticker):
            scaler = self.feature_scalers_[ticker]
        else:
            scaler = FeatureScaler.fit(features, int(origins[0]) + 1)
        past = self._past(prices, features, scaler, context)
        return window_rows(past, origins, self.window.lookback), future

    def knows(self, ticker: str | None) -> bool:
        """Whether `ticker` is one the model was trained on."""
        check_fitted(self, "network_")
        return ticker in self.tickers_

    def predict(
        self,
        prices: pd.Series,
        origins: np.ndarray,
        ticker: str | None = None,
        *,
        context: Panel | None = None,
    ) -> Forecast:
        """Forecast `prices` (the series of `ticker`, or a series the model has not seen when
        `ticker` is None or unknown) from each origin. With `model.covariates`, `context` is
        the panel to read bar fields and other tickers' returns from (default: the panel the
        model was fitted on); nothing in it dated after an origin reaches that forecast."""
        check_fitted(self, "network_")
        origins = check_origins(prices, origins, self.min_history)
        if self.knows(ticker):
            scaler, index = self.scalers_[ticker], self.tickers_.index(ticker)
        else:
            scaler = cold_scaler(prices, int(origins[0]), self.target, self.model.demean)
            index = UNKNOWN_TICKER
        values = window_inputs(
            prices, origins, lookback=self.window.lookback, scaler=scaler, target=self.target
        )
        past, future = self._covariates(prices, origins, ticker, context)
        if past is not None:
            values = np.concatenate([values, past], axis=2)
        tickers = np.full(len(origins), index, np.int32) if self.model.ticker_embedding else None
        output = self.network_.forecast(WindowInputs(values, tickers, future))
        origin_prices = np.asarray(prices, dtype=np.float64)[origins]
        model_prices = forecast_to_prices(output.forecast, origin_prices, scaler, self.target)
        shrinkage = self.shrinkage_of(ticker if self.knows(ticker) else None)
        origin = origin_prices[:, np.newaxis]
        return Forecast(
            origins=origins,
            prices=origin + shrinkage * (model_prices - origin)
            if shrinkage != 1.0
            else model_prices,
            encoder_state=output.encoder_final_state,
            decoder_state=output.decoder_final_state,
        )

    def for_series(self, ticker: str | None, context: Panel | None = None) -> SeriesForecaster:
        """The fitted model as the forecaster protocol for one series (`ticker`, or None for a
        series it was not trained on), reading covariates from `context` (`predict`)."""
        check_fitted(self, "network_")
        return SeriesForecaster(self, ticker, context)

    def export(self, path: str | Path, *, price_column: str, date_column: str) -> Path:
        """The fitted model as a self-contained directory (`export.export_model`), with every
        ticker's scaler; a ticker it was not trained on is scaled on its own prices."""
        check_fitted(self, "network_")
        if self.model.covariates:
            raise ConfigError(
                f"model.covariates={list(self.model.covariates)}: exporting a model that reads "
                "covariates is not built (the exported model and the pyfunc read prices only). "
                "Fix: train with model.covariates=[] to export and serve it; covariates are "
                "measured with `python -m forecaster backtest data=panel`."
            )
        preprocessing = Preprocessing(
            target=self.target,
            scaler_mean=math.nan,  # per ticker, below
            scaler_std=math.nan,
            lookback=self.window.lookback,
            horizon=self.horizon,
            num_layers=self.model.num_layers,
            num_units=self.model.num_units,
            price_column=price_column,
            date_column=date_column,
            tickers=list(self.tickers_),
            ticker_scalers=[[self.scalers_[t].mean, self.scalers_[t].std] for t in self.tickers_],
            ticker_embedding=self.network_.spec.ticker_embedding,
            demean=self.model.demean,
            shrinkage=self.default_shrinkage_,
            ticker_shrinkage=[self.shrinkage_[t] for t in self.tickers_],
        )
        network = self.network_
        return export_model(network.spec, network.get_weights(), preprocessing, path)


class SeriesForecaster:
    """A fitted global model seen as the forecaster protocol for one series: `predict` only
    (it was fitted on the whole panel, `GlobalSeq2SeqForecaster.fit_panel`)."""

    def __init__(
        self, model: GlobalSeq2SeqForecaster, ticker: str | None, context: Panel | None = None
    ) -> None:
        self.global_model = model
        self.ticker = ticker
        self.context = context
        self.horizon = model.horizon
        self.min_history = model.min_history

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        raise TypeError(
            "a global model is fitted on a whole panel (GlobalSeq2SeqForecaster.fit_panel), "
            "not on one series"
        )

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        return self.global_model.predict(prices, origins, self.ticker, context=self.context)

"""The seq2seq LSTM as a forecaster: the model protocol (`models.base`) over a `Seq2SeqModel`.

`fit` turns the training prices into the target series (log returns by default), fits the scaler
on the training part only, cuts windows, and trains the network with the training loop (early
stopping on the validation part when there is one). `predict` encodes the `lookback` values up to
each origin from a zero state and decodes `horizon` steps, all origins in one batch, and turns the
scaled forecasts back into prices; with a distributional `model.output`, into quantiles of the
price at `model.quantiles` (`outputs`), the point forecast being their median. With
`model.state=carry` the encoder state is carried over the whole series instead (`carry`). With
`model.calibration=scale`, `fit` ends by choosing, per step, the factor that scales the
quantiles around their median on the validation windows (`outputs.fit_interval_scale`), and
`predict` and `export` apply it.

Constructor arguments are the config groups they come from (`window`, `model`, `train`, plus
`data.target` and `seed`), stored as given; what `fit` learns ends in `_`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import pandas as pd

from forecaster.data.chunks import ChunkSet, make_chunks
from forecaster.data.splits import TimeSplit, WindowConfig, check_target, target_offset
from forecaster.data.windows import (
    Dataset,
    WindowSet,
    forecast_to_prices,
    make_windows,
    target_series,
    window_inputs,
)
from forecaster.errors import ConfigError, DataError
from forecaster.models.base import Forecast, check_fitted, check_origins, check_series
from forecaster.models.seq2seq.carry import CarriedStateTraining, carried_forecast
from forecaster.models.seq2seq.export import Preprocessing, export_model
from forecaster.models.seq2seq.network import OwnsNetwork, Seq2SeqModel
from forecaster.models.seq2seq.outputs import (
    POINT,
    check_output_target,
    cumulative_quantiles,
    fit_interval_scale,
    quantiles_to_prices,
    scale_intervals,
)
from forecaster.models.seq2seq.spec import ModelSpec, Seq2SeqConfig
from forecaster.training import Callback, EarlyStopping, TrainConfig, Trainer
from forecaster.training.stopping import StopRequest


class Seq2SeqForecaster(OwnsNetwork):
    def __init__(
        self,
        *,
        window: WindowConfig | None = None,
        model: Seq2SeqConfig | None = None,
        train: TrainConfig | None = None,
        target: str = "log_return",
        seed: int = 0,
        warm_start: bool = False,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        stop_request: StopRequest | None = None,
    ) -> None:
        check_target(target)
        check_output_target((model or Seq2SeqConfig()).output, target)
        if model is not None and (
            model.ticker_embedding or model.shrinkage != "none" or not model.demean
        ):
            raise ConfigError(
                "model.ticker_embedding, model.shrinkage and model.demean are settings of the "
                "global model over a panel (data=panel); a single series takes their defaults "
                "(0, none, true)."
            )
        if model is not None and model.covariates:
            raise ConfigError(
                f"model.covariates={list(model.covariates)}: covariates are built for the global "
                "model over a panel, which reads other tickers and bar fields (data=panel, files "
                "or long; a panel of one file works too). Fix: train on a panel, or set "
                "model.covariates=[]."
            )
        if train is not None and train.carry and (model or Seq2SeqConfig()).state != "carry":
            raise ConfigError(
                "train.carry=true trains the network on the state carried over the series, "
                "which only a carried forecast starts from: set model.state=carry too (or "
                "train.carry=false)."
            )
        self.window = window or WindowConfig()
        self.model = model or Seq2SeqConfig()
        self.train = train or TrainConfig()
        self.target = target
        self.seed = seed
        # scikit-learn's meaning: a refit starts from the weights the last fit ended with.
        self.warm_start = warm_start
        self.callbacks = callbacks  # run-time hooks (tracking), not hyperparameters
        self.checkpoint_dir = checkpoint_dir
        self.stop_request = stop_request  # asks training to stop at a batch boundary
        self.horizon = self.window.horizon
        self.network_: Seq2SeqModel | None = None
        self.interval_scale_: np.ndarray | None = None  # [horizon], model.calibration=scale

    @property
    def min_history(self) -> int:
        return self.window.lookback + target_offset(self.target)

    def fit(self, train: pd.Series, val: pd.Series | None = None, *, resume: bool = False) -> Self:
        """Train on `train`, early-stopping on `val` (which continues `train` in time).
        `resume=True` continues an interrupted fit from `checkpoint_dir`."""
        w = self.window
        check_series(train, "the training series", self.min_history + w.horizon)
        if val is None and self.model.calibration != "none":
            raise ConfigError(
                f"model.calibration={self.model.calibration} fits the intervals on the "
                "validation part, and this fit has none. Fix: pass a validation series, or "
                "set model.calibration=none."
            )
        prices = train
        if val is not None:
            check_series(val, "the validation series", w.horizon)
            if isinstance(train.index, pd.DatetimeIndex) and not val.index[0] > train.index[-1]:
                raise DataError(
                    f"the validation series must continue the training series: it starts on "
                    f"{val.index[0]}, the training series ends on {train.index[-1]}"
                )
            prices = pd.concat([train, val])
        split = TimeSplit.at(prices, len(train), len(prices))
        windows = make_windows(
            prices,
            split,
            lookback=w.lookback,
            horizon=w.horizon,
            stride=w.stride,
            target=self.target,
        )
        self._prepare_network(ModelSpec.of(w.horizon, self.model, self.train))
        trainable, train_data = self.network_, windows.train
        if self.train.carry:
            trainable, train_data = self._carried_training(prices, split, windows)
        self.network_.steps_per_epoch = math.ceil(len(train_data) / self.train.batch_rows)
        callbacks = list(self.callbacks)
        if val is not None:
            callbacks.append(EarlyStopping(self.train.patience))
        trainer = Trainer(
            trainable,
            self.train,
            seed=self.seed,
            callbacks=callbacks,
            checkpoint_dir=self.checkpoint_dir,
            stop_request=self.stop_request,
        )
        self.history_ = trainer.fit(
            train_data, windows.val if val is not None else None, resume=resume
        )
        self.scaler_ = windows.scaler
        self.interval_scale_ = None
        if self.model.calibration == "scale":
            self.interval_scale_ = self._fit_interval_scale(prices, windows.val)
        return self

    def _carried_training(
        self, prices: pd.Series, split: TimeSplit, windows: Dataset
    ) -> tuple[CarriedStateTraining, ChunkSet]:
        """The network trained on consecutive chunks of the training part with the state
        carried (`train.carry=true`), validated by the carried forecast."""
        offset = target_offset(self.target)
        y = target_series(prices, self.target).to_numpy()
        scaled = windows.scaler.transform(y).astype(np.float32)
        chunks = make_chunks(
            scaled,
            split.train_stop - offset,
            chunk_length=self.train.chunk_length,
            horizon=self.window.horizon,
            streams=self.train.streams,
        )
        trainable = CarriedStateTraining(
            self.network_, chunks, scaled, windows.val.origin_index - offset
        )
        return trainable, chunks

    def _fit_interval_scale(self, prices: pd.Series, val: WindowSet) -> np.ndarray:
        """Per step, the factor on the quantiles' distances from the median that minimises
        the pinball loss over the validation windows (every origin from the last training bar
        on whose horizon ends within `prices`, the fit's data), forecast the way `predict`
        forecasts (window or carried state)."""
        levels = self._levels()
        output = self._network_output(prices, val.origin_index)
        cumulative = cumulative_quantiles(self.model.output, output.distribution, levels)
        realised = np.cumsum(np.asarray(val.targets, dtype=np.float64), axis=1)
        return fit_interval_scale(cumulative, realised, levels)

    def _levels(self) -> tuple[float, ...]:
        return tuple(float(level) for level in self.model.quantiles)

    def _network_output(self, prices: pd.Series, origins: np.ndarray):
        """The network's outputs for `origins` (positions in `prices`), from the window up to
        each origin or from the state carried over the whole series (`model.state`)."""
        if self.model.state == "carry":
            y = target_series(prices, self.target).to_numpy()
            scaled = self.scaler_.transform(y).astype(np.float32)
            offset = target_offset(self.target)
            return carried_forecast(self.network_, scaled, origins - offset)
        inputs = window_inputs(
            prices,
            origins,
            lookback=self.window.lookback,
            scaler=self.scaler_,
            target=self.target,
        )
        return self.network_.forecast(inputs)

    def _prepare_network(self, spec: ModelSpec) -> None:
        """A network in its initial state. A refit with the same spec, seed, threads and precision
        reuses the graph (reset to its initial values: the same numbers as a new one, without
        the build); with `warm_start`, from the weights the last fit ended with."""
        threads = (self.train.intra_op_threads, self.train.inter_op_threads)
        precision = self.train.precision
        network = self.network_
        if network is not None and (
            network.spec,
            network.seed,
            network.threads,
            network.precision,
        ) == (spec, self.seed, threads, precision):
            weights = network.get_weights() if self.warm_start else None
            network.reset()
            if weights is not None:
                network.set_weights(weights)
            return
        self.close()
        self.network_ = Seq2SeqModel(
            spec,
            seed=self.seed,
            intra_op_threads=threads[0],
            inter_op_threads=threads[1],
            precision=precision,
        )

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        check_fitted(self, "network_")
        origins = check_origins(prices, origins, self.min_history)
        output = self._network_output(prices, origins)
        origin_prices = np.asarray(prices, dtype=np.float64)[origins]
        if self.model.output != POINT:
            levels = self._levels()
            cumulative = cumulative_quantiles(self.model.output, output.distribution, levels)
            if self.interval_scale_ is not None:
                cumulative = scale_intervals(cumulative, self.interval_scale_, levels)
            return Forecast.from_quantiles(
                origins,
                levels,
                quantiles_to_prices(cumulative, origin_prices, self.scaler_),
                encoder_state=output.encoder_final_state,
                decoder_state=output.decoder_final_state,
            )
        return Forecast(
            origins=origins,
            prices=forecast_to_prices(output.forecast, origin_prices, self.scaler_, self.target),
            encoder_state=output.encoder_final_state,
            decoder_state=output.decoder_final_state,
        )

    def export(
        self,
        path: str | Path,
        *,
        price_column: str,
        date_column: str,
        calendar: str | None = None,
    ) -> Path:
        """The fitted model as a self-contained directory (`export.export_model`); its forecasts
        are dated on the sessions of the exchange `calendar` when given."""
        check_fitted(self, "network_")
        preprocessing = Preprocessing(
            target=self.target,
            scaler_mean=self.scaler_.mean,
            scaler_std=self.scaler_.std,
            lookback=self.window.lookback,
            horizon=self.horizon,
            num_layers=self.model.num_layers,
            num_units=self.model.num_units,
            output=self.model.output,
            quantile_levels=[float(level) for level in self.model.quantiles],
            interval_scale=None if self.interval_scale_ is None else self.interval_scale_.tolist(),
            price_column=price_column,
            date_column=date_column,
            calendar=calendar,
        )
        network = self.network_
        return export_model(network.spec, network.get_weights(), preprocessing, path)

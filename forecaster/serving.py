"""A trained model as a self-contained directory, and forecasting prices from it.

`export_model` writes:

    <dir>/saved_model/         TF1 SavedModel; signature inputs: encoder_inputs, encoder_lengths,
                               initial_{c,h}_{k}; outputs: forecast, encoder_{c,h}_{k},
                               decoder_{c,h}_{k}
    <dir>/preprocessing.json   how prices become model inputs and forecasts become prices

`ExportedForecaster` loads that directory into its own graph and Session and turns a price
series into a price forecast. It needs no graph-building code, so a model keeps working when the
code that trained it changes. The MLflow pyfunc wrapper (in `forecaster.tracking`) delegates here.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from forecaster.data import PriceSeries
from forecaster.errors import DataError
from forecaster.graph import ModelSpec
from forecaster.lstm import LSTMState
from forecaster.model import SERVING_TAG, SIGNATURE_KEY, Seq2SeqModel
from forecaster.states import NumpyStates, pack, unpack
from forecaster.windows import (
    Dataset,
    Scaler,
    continuation_inputs,
    encoder_inputs,
    forecast_to_prices,
)

SAVED_MODEL_DIR = "saved_model"
PREPROCESSING_FILE = "preprocessing.json"


@dataclass(frozen=True)
class Preprocessing:
    target: str
    scaler_mean: float
    scaler_std: float
    lookback: int
    horizon: int
    num_layers: int
    num_units: int
    price_column: str
    date_column: str

    @property
    def scaler(self) -> Scaler:
        return Scaler(self.scaler_mean, self.scaler_std)

    @classmethod
    def of(cls, series: PriceSeries, dataset: Dataset, spec: ModelSpec) -> Preprocessing:
        return cls(
            target=dataset.target,
            scaler_mean=dataset.scaler.mean,
            scaler_std=dataset.scaler.std,
            lookback=dataset.lookback,
            horizon=dataset.horizon,
            num_layers=spec.num_layers,
            num_units=spec.num_units,
            price_column=series.price_column,
            date_column=series.date_column,
        )


@dataclass(frozen=True)
class PriceForecast:
    prices: np.ndarray  # [horizon] forecast prices
    dates: pd.DatetimeIndex | None  # the next `horizon` business days, when dates are known
    encoder_final_state: NumpyStates  # batch of 1; what the decoder started from
    decoder_final_state: NumpyStates

    def to_frame(self) -> pd.DataFrame:
        """Columns `step`, `date` (when known), `forecast`, and `state`: the encoder's state
        after the last input bar, packed `[c_0, h_0, c_1, h_1, ...]`, the same on every row."""
        frame = pd.DataFrame({"step": np.arange(1, len(self.prices) + 1), "forecast": self.prices})
        if self.dates is not None:
            frame.insert(1, "date", self.dates)
        frame["state"] = [pack(self.encoder_final_state).tolist()] * len(frame)
        return frame


def export_model(model: Seq2SeqModel, preprocessing: Preprocessing, path: str | Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.export_saved_model(path / SAVED_MODEL_DIR)
    (path / PREPROCESSING_FILE).write_text(json.dumps(asdict(preprocessing), indent=2))
    return path


def prices_from_frame(frame: pd.DataFrame, preprocessing: Preprocessing) -> pd.Series:
    """The training price column and, if present, the date column, as a price series."""
    column = preprocessing.price_column
    if column not in frame.columns:
        raise DataError(
            f"input has no {column!r} column (the price column the model was trained on); "
            f"found {list(frame.columns)}"
        )
    prices = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    if prices.isna().any() or (prices <= 0).any():
        row = int(np.flatnonzero(prices.isna().to_numpy() | (prices <= 0).to_numpy())[0])
        raise DataError(
            f"input column {column!r} row {row}: {frame[column].iloc[row]!r} is not a positive "
            f"price; every row must hold one"
        )
    if preprocessing.date_column in frame.columns:
        dates = pd.to_datetime(frame[preprocessing.date_column], errors="coerce")
        if dates.isna().any() or not dates.is_monotonic_increasing or dates.duplicated().any():
            raise DataError(
                f"input column {preprocessing.date_column!r} must hold valid, strictly "
                f"increasing dates"
            )
        prices.index = pd.DatetimeIndex(dates, name="date")
    else:
        prices = prices.reset_index(drop=True)
    return prices


class ExportedForecaster:
    """An exported model loaded into its own graph and Session."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.preprocessing = Preprocessing(**json.loads((path / PREPROCESSING_FILE).read_text()))
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        meta_graph = tf.compat.v1.saved_model.load(
            self.session, [SERVING_TAG], str(path / SAVED_MODEL_DIR)
        )
        signature = meta_graph.signature_def[SIGNATURE_KEY]
        self._inputs = {
            k: self.graph.get_tensor_by_name(v.name) for k, v in signature.inputs.items()
        }
        self._outputs = {
            k: self.graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()
        }

    def forecast(self, prices: pd.Series) -> PriceForecast:
        """Cold start: encode the last `lookback` bars of `prices` from a zero state."""
        p = self.preprocessing
        inputs = encoder_inputs(prices, lookback=p.lookback, scaler=p.scaler, target=p.target)
        return self._run(inputs, None, prices)

    def continue_from(
        self, state: NumpyStates, previous_price: float, prices: pd.Series
    ) -> PriceForecast:
        """Warm start: carry `state` (the encoder's state after the bar that closed at
        `previous_price`) over the new bars `prices`, then forecast from the last one."""
        p = self.preprocessing
        inputs = continuation_inputs(
            prices, previous_price=previous_price, scaler=p.scaler, target=p.target
        )
        return self._run(inputs, state, prices)

    def _run(
        self, inputs: np.ndarray, initial_state: NumpyStates | None, prices: pd.Series
    ) -> PriceForecast:
        p = self.preprocessing
        feed = {self._inputs["encoder_inputs"]: inputs}
        for k, state in enumerate(initial_state or ()):
            for part in ("c", "h"):
                value = np.asarray(getattr(state, part), np.float32)
                if value.shape != (1, p.num_units):
                    raise DataError(
                        f"initial state layer {k} {part} has shape {value.shape}; this model "
                        f"needs (1, {p.num_units})"
                    )
                feed[self._inputs[f"initial_{part}_{k}"]] = value
        out = self.session.run(self._outputs, feed)
        forecast_prices = forecast_to_prices(
            out["forecast"], np.array([prices.iloc[-1]]), p.scaler, p.target
        )[0]
        dates = None
        if isinstance(prices.index, pd.DatetimeIndex):
            dates = pd.bdate_range(prices.index[-1] + pd.offsets.BDay(1), periods=p.horizon)

        def states(prefix: str) -> NumpyStates:
            return tuple(
                LSTMState(out[f"{prefix}_c_{k}"], out[f"{prefix}_h_{k}"])
                for k in range(p.num_layers)
            )

        return PriceForecast(forecast_prices, dates, states("encoder"), states("decoder"))

    def close(self) -> None:
        self.session.close()


def predict_frame(
    forecaster: ExportedForecaster, frame: pd.DataFrame, initial_state=None
) -> pd.DataFrame:
    """The serving protocol (MLflow pyfunc), stateless or stateful.

    Without `initial_state`: `frame` holds recent history (at least `lookback` bars, +1 for log
    returns); the last `lookback` are encoded from zeros.
    With `initial_state` (a packed state, as returned in the `state` column): the first row of
    `frame` is the last bar that state has seen, the following rows are the new bars.
    Either way the output's `state` column is the state to send with the next call.
    """
    prices = prices_from_frame(frame, forecaster.preprocessing)
    if initial_state is None:
        return forecaster.forecast(prices).to_frame()
    p = forecaster.preprocessing
    state = unpack(initial_state, p.num_layers, p.num_units)
    return forecaster.continue_from(state, float(prices.iloc[0]), prices.iloc[1:]).to_frame()

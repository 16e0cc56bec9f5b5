"""Forecasting prices from an exported model (`forecaster.models.seq2seq.export`).

`ExportedForecaster` loads an exported directory into its own graph and Session and turns a
price series into a price forecast, cold (from a zero state) or warm (carrying a given state
over new bars). It needs no graph-building code, so a model keeps working when the code that
trained it changes. The MLflow pyfunc wrapper (`forecaster.tracking.pyfunc`) delegates here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from forecaster.data.io import prices_from_frame
from forecaster.data.timestamps import future_dates
from forecaster.data.windows import (
    Scaler,
    continuation_inputs,
    encoder_inputs,
    forecast_to_prices,
)
from forecaster.errors import DataError
from forecaster.evaluation.probabilistic import quantile_column
from forecaster.models.base import MEDIAN
from forecaster.models.seq2seq.export import (
    SAVED_MODEL_DIR,
    SERVING_TAG,
    SIGNATURE_KEY,
    Preprocessing,
)
from forecaster.models.seq2seq.outputs import (
    POINT,
    cumulative_quantiles,
    quantiles_to_prices,
    scale_intervals,
)
from forecaster.models.seq2seq.state import LSTMState, NumpyStates, pack, state_feed, unpack

TICKER_COLUMN = "ticker"  # a global model's input: which series the prices are


@dataclass(frozen=True)
class PriceForecast:
    prices: np.ndarray  # [horizon] forecast prices; a distributional model's median
    # The next `horizon` timestamps, spaced as the input was, on the exchange calendar the
    # model was exported with (`data.timestamps.future_dates`), when the input was dated.
    dates: pd.DatetimeIndex | None
    encoder_final_state: NumpyStates  # batch of 1; what the decoder started from
    decoder_final_state: NumpyStates
    # A distributional model's quantiles of the price [horizon, Q] at `quantile_levels`
    quantile_levels: tuple[float, ...] | None = None
    quantiles: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """Columns `step`, `date` (when known), `forecast`, and the quantiles `q0.05` ... `q0.95`
        of a distributional model; one row per step."""
        frame = pd.DataFrame({"step": np.arange(1, len(self.prices) + 1), "forecast": self.prices})
        if self.dates is not None:
            frame.insert(1, "date", self.dates)
        for k, level in enumerate(self.quantile_levels or ()):
            frame[quantile_column(level)] = self.quantiles[:, k]
        return frame

    def packed_state(self) -> list[float]:
        """The encoder's state after the last input bar, packed `[c_0, h_0, c_1, h_1, ...]`:
        what to continue the series from (`initial_state` of the next call)."""
        return pack(self.encoder_final_state).tolist()


class ExportedForecaster:
    """An exported model loaded into its own graph and Session."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.preprocessing = Preprocessing.load(path)
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
        self._initial_state = tuple(
            LSTMState(self._inputs[f"initial_c_{k}"], self._inputs[f"initial_h_{k}"])
            for k in range(self.preprocessing.num_layers)
        )

    def forecast(self, prices: pd.Series, ticker: str | None = None) -> PriceForecast:
        """Cold start: encode the last `lookback` bars of `prices` from a zero state. For a
        global model, `prices` are `ticker`'s; a ticker it was not trained on (or None) is
        scaled on `prices` themselves and gets the mean ticker embedding."""
        p = self.preprocessing
        scaler = p.scaler_for(ticker, prices)
        inputs = encoder_inputs(prices, lookback=p.lookback, scaler=scaler, target=p.target)
        index, shrinkage = p.ticker_index(ticker), p.shrinkage_for(ticker)
        return self._run(inputs, None, prices, None, scaler, index, shrinkage)

    def continue_from(
        self,
        state: NumpyStates,
        previous_price: float,
        prices: pd.Series,
        previous_date: pd.Timestamp | None = None,
    ) -> PriceForecast:
        """Warm start: carry `state` (the encoder's state after the bar that closed at
        `previous_price`, on `previous_date` when known) over the new bars `prices`, then
        forecast from the last one."""
        p = self.preprocessing
        if p.tickers is not None:
            raise DataError(
                "warm start (a carried state) is built for single-series models; forecast a "
                "global model's tickers cold (drop warm_start / initial_state)."
            )
        inputs = continuation_inputs(
            prices, previous_price=previous_price, scaler=p.scaler, target=p.target
        )
        dates = prices.index
        if previous_date is not None and isinstance(dates, pd.DatetimeIndex):
            dates = dates.insert(0, previous_date)  # the spacing of the series, from 2 bars on
        return self._run(inputs, state, prices, dates)

    def _run(
        self,
        inputs: np.ndarray,
        initial_state: NumpyStates | None,
        prices: pd.Series,
        dates: pd.Index | None = None,
        scaler: Scaler | None = None,  # default: the single-series model's
        ticker_index: int | None = None,
        shrinkage: float = 1.0,
    ) -> PriceForecast:
        p = self.preprocessing
        scaler = p.scaler if scaler is None else scaler
        feed = {self._inputs["encoder_inputs"]: inputs}
        if "ticker_ids" in self._inputs:
            feed[self._inputs["ticker_ids"]] = np.array([ticker_index], dtype=np.int32)
        feed.update(state_feed(self._initial_state, initial_state, len(inputs)))
        out = self.session.run(self._outputs, feed)
        origin = float(prices.iloc[-1])
        origin_price = np.array([origin], dtype=np.float64)
        levels, quantiles = None, None
        if p.output == POINT:
            forecast = forecast_to_prices(out["forecast"], origin_price, scaler, p.target)
            forecast_prices = forecast[0]
        else:
            levels = tuple(p.quantile_levels)
            cumulative = cumulative_quantiles(p.output, out["distribution"], levels)
            if p.interval_scale is not None:
                cumulative = scale_intervals(cumulative, p.interval_scale, levels)
            quantiles = quantiles_to_prices(cumulative, origin_price, scaler)[0]
            forecast_prices = quantiles[:, levels.index(MEDIAN)]
        finite = np.all(np.isfinite(forecast_prices)) and (
            quantiles is None or np.all(np.isfinite(quantiles))
        )
        if not finite:
            dated = isinstance(prices.index, pd.DatetimeIndex)
            last = f" on {prices.index[-1]}" if dated else ""
            raise DataError(
                f"the forecast from the last bar{last} (price {origin!r}) is not finite "
                f"({forecast_prices.tolist()}): the model's output overflowed on this input. "
                "Fix: check the prices for values far outside those the model was trained on."
            )
        if shrinkage != 1.0:  # an increasing map: the median stays the point, nothing crosses
            forecast_prices = origin + shrinkage * (forecast_prices - origin)
            if quantiles is not None:
                quantiles = origin + shrinkage * (quantiles - origin)
        dates = prices.index if dates is None else dates
        # Dates follow the data's spacing, which takes two dated bars to know.
        future = None
        if isinstance(dates, pd.DatetimeIndex) and len(dates) >= 2:
            future = future_dates(dates, p.horizon, p.calendar)

        def states(prefix: str) -> NumpyStates:
            return tuple(
                LSTMState(out[f"{prefix}_c_{k}"], out[f"{prefix}_h_{k}"])
                for k in range(p.num_layers)
            )

        return PriceForecast(
            forecast_prices, future, states("encoder"), states("decoder"), levels, quantiles
        )

    def close(self) -> None:
        self.session.close()


def forecast_frame(
    forecaster: ExportedForecaster, frame: pd.DataFrame, initial_state=None
) -> PriceForecast:
    """The serving protocol (MLflow pyfunc), stateless or stateful.

    Without `initial_state`: `frame` holds recent history (at least `lookback` bars, +1 for log
    returns); the last `lookback` are encoded from zeros.
    With `initial_state` (a packed state, as returned in the `state` column): the first row of
    `frame` is the last bar that state has seen, the following rows are the new bars.
    Either way the forecast's `packed_state()` is the state to send with the next call.
    For a global model, an optional `ticker` column names the series (one ticker per call); a
    ticker it was not trained on, or none, is forecast cold from its own prices.
    """
    p = forecaster.preprocessing
    ticker = None
    if TICKER_COLUMN in frame.columns:
        names = frame[TICKER_COLUMN].dropna().unique()
        if len(names) > 1:
            raise DataError(
                f"the {TICKER_COLUMN!r} column names {len(names)} tickers ({list(names[:5])}); "
                "send one series per call."
            )
        ticker = str(names[0]) if len(names) else None
        frame = frame.drop(columns=TICKER_COLUMN)
    prices = prices_from_frame(frame, date_column=p.date_column, price_column=p.price_column)
    if initial_state is None:
        return forecaster.forecast(prices, ticker)
    state = unpack(initial_state, p.num_layers, p.num_units)
    previous_date = prices.index[0] if isinstance(prices.index, pd.DatetimeIndex) else None
    return forecaster.continue_from(state, float(prices.iloc[0]), prices.iloc[1:], previous_date)

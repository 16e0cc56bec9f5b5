"""The one file format for a carried LSTM state: what a stream needs to continue a series.

A state file is an `.npz` holding, for every layer `k`, `encoder_c_k` and `encoder_h_k` (the
encoder's state after the last bar it read, the state a forecast starts from), optionally
`decoder_c_k` and `decoder_h_k` (the decoder's state after that forecast's last step, kept for
review), and `last_price` and `last_date` of that bar. Online forecasters save and load it; a
training run logs its last test window's state in it (`states/final_states.npz`); `predict
warm_start=true` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.models.base import Forecast
from forecaster.models.seq2seq.state import LSTMState, NumpyStates, from_arrays, to_arrays


@dataclass(frozen=True)
class StreamState:
    """Everything needed to continue a series: the state after its last bar, and that bar."""

    encoder_state: NumpyStates  # per layer (c, h), each [1, num_units]
    last_price: float
    last_date: pd.Timestamp | None  # None for undated series
    decoder_state: NumpyStates | None = None  # after the forecast from that bar, when known

    @classmethod
    def of_forecast(cls, forecast: Forecast, prices: pd.Series, row: int) -> StreamState:
        """The state after the origin bar of `forecast`'s row `row` (a recurrent model's)."""
        row = range(len(forecast))[row]  # a negative row counts from the end
        origin = int(forecast.origins[row])

        def pick(states: NumpyStates) -> NumpyStates:
            return tuple(LSTMState(s.c[row : row + 1], s.h[row : row + 1]) for s in states)

        dated = isinstance(prices.index, pd.DatetimeIndex)
        return cls(
            encoder_state=pick(forecast.encoder_state),
            last_price=float(prices.iloc[origin]),
            last_date=prices.index[origin] if dated else None,
            decoder_state=pick(forecast.decoder_state),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = to_arrays("encoder", self.encoder_state)
        if self.decoder_state is not None:
            arrays |= to_arrays("decoder", self.decoder_state)
        date = "" if self.last_date is None else self.last_date.isoformat()
        with path.open("wb") as file:  # a file object: np.savez would append ".npz" to a name
            np.savez(
                file, **arrays, last_price=np.float64(self.last_price), last_date=np.str_(date)
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> StreamState:
        with np.load(path) as arrays:
            date = str(arrays["last_date"])
            return cls(
                encoder_state=from_arrays(arrays, "encoder"),
                last_price=float(arrays["last_price"]),
                last_date=pd.Timestamp(date) if date else None,
                decoder_state=from_arrays(arrays, "decoder") if "decoder_c_0" in arrays else None,
            )

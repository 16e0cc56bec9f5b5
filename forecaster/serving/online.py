"""Online forecasting: hold the encoder's `(c, h)`, take new bars as they come, forecast.

    model = ExportedForecaster(path)                      # or `tracking.load_model(uri)`
    online = OnlineForecaster.start(model, history)       # cold start on recent history
    forecast = online.update(new_bars)                    # one bar or a chunk: same result
    online.save("state.npz")                              # survives a restart...
    online = OnlineForecaster.load(model, "state.npz")    # ...with nothing lost

Carrying the state over bars one at a time, in chunks, or in one pass gives the same state and
forecast (tests/test_state.py): the LSTM has no other memory.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecaster.errors import DataError
from forecaster.serving.exported import ExportedForecaster, PriceForecast
from forecaster.serving.states import StreamState


class OnlineForecaster:
    """Holds a stream's state; `update` carries it over new bars and returns a forecast."""

    def __init__(self, model: ExportedForecaster, state: StreamState) -> None:
        self.model = model
        self._state = state

    @classmethod
    def start(cls, model: ExportedForecaster, history: pd.Series) -> OnlineForecaster:
        """Cold start: encode the last `lookback` bars of `history` from a zero state."""
        forecast = model.forecast(history)
        return cls(model, _state_after(forecast, history))

    def update(self, prices: pd.Series) -> PriceForecast:
        """Carry the state over `prices` (bars after the last one seen) and forecast."""
        last_date = self._state.last_date
        if last_date is not None and isinstance(prices.index, pd.DatetimeIndex):
            if len(prices) and prices.index[0] <= last_date:
                raise DataError(
                    f"new bars must come after the last bar seen ({last_date:%Y-%m-%d}); the "
                    f"first one given is dated {prices.index[0]:%Y-%m-%d}"
                )
        forecast = self.model.continue_from(
            self._state.encoder_state, self._state.last_price, prices, self._state.last_date
        )
        self._state = _state_after(forecast, prices)
        return forecast

    def get_state(self) -> StreamState:
        return self._state

    def set_state(self, state: StreamState) -> None:
        self._state = state

    def save(self, path: str | Path) -> Path:
        return self._state.save(path)

    @classmethod
    def load(cls, model: ExportedForecaster, path: str | Path) -> OnlineForecaster:
        return cls(model, StreamState.load(path))


def _state_after(forecast: PriceForecast, prices: pd.Series) -> StreamState:
    dated = isinstance(prices.index, pd.DatetimeIndex)
    return StreamState(
        encoder_state=forecast.encoder_final_state,
        last_price=float(prices.iloc[-1]),
        last_date=prices.index[-1] if dated else None,
        decoder_state=forecast.decoder_final_state,
    )

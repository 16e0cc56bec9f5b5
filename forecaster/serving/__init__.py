"""The serving layer: forecasting prices from an exported model, cold or from a carried state,
bar by bar, with one file format for the state."""

from forecaster.serving.exported import ExportedForecaster, PriceForecast, forecast_frame
from forecaster.serving.online import OnlineForecaster
from forecaster.serving.states import StreamState

__all__ = [
    "ExportedForecaster",
    "OnlineForecaster",
    "PriceForecast",
    "StreamState",
    "forecast_frame",
]

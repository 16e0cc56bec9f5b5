"""The data layer (numpy and pandas only): load and validate prices, split them by time, and
cut scaled, leak-free windows."""

from forecaster.data.io import PriceSeries, load_prices, prices_from_frame
from forecaster.data.splits import TimeSplit, WindowConfig, time_split

__all__ = [
    "PriceSeries",
    "TimeSplit",
    "WindowConfig",
    "load_prices",
    "prices_from_frame",
    "time_split",
]

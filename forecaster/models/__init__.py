"""The models layer: the forecaster protocol, the baselines, and the seq2seq LSTM.

`REGISTRY` names every forecaster; `create` builds one by name. Entries are import paths, so
naming a baseline does not import TensorFlow.
"""

from __future__ import annotations

from importlib import import_module

from forecaster.errors import ConfigError
from forecaster.models.base import Forecast, Forecaster

REGISTRY = {
    "naive": "forecaster.models.baselines:NaiveForecaster",
    "drift": "forecaster.models.baselines:DriftForecaster",
    "mean_return": "forecaster.models.baselines:MeanReturnForecaster",
    "ridge": "forecaster.models.baselines:RidgeForecaster",
    "auto_ets": "forecaster.models.statistical:AutoETSForecaster",
    "auto_arima": "forecaster.models.statistical:AutoARIMAForecaster",
    "seq2seq": "forecaster.models.seq2seq.forecaster:Seq2SeqForecaster",
}
# The models trained by the project itself; every other entry is a baseline.
DEEP_MODELS = ("seq2seq",)


def forecaster_class(name: str) -> type:
    try:
        module, _, attribute = REGISTRY[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {sorted(REGISTRY)}") from None
    return getattr(import_module(module), attribute)


def create(name: str, **params) -> Forecaster:
    return forecaster_class(name)(**params)


__all__ = ["DEEP_MODELS", "REGISTRY", "Forecast", "Forecaster", "create", "forecaster_class"]

"""Score the model and the naive random walk on exactly the same test windows, in price space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecaster.lstm import LSTMState
from forecaster.metrics import forecast_metrics, naive_forecast
from forecaster.model import Seq2SeqModel
from forecaster.states import NumpyStates
from forecaster.windows import Dataset, forecast_to_prices


@dataclass(frozen=True)
class Evaluation:
    forecast_prices: np.ndarray  # [n, horizon], one row per test window
    metrics: dict[str, float]  # the model's test metrics
    naive_metrics: dict[str, float]  # the random walk's, same windows
    last_encoder_state: NumpyStates  # last test window, batch of 1: the state handed to the decoder
    last_decoder_state: NumpyStates  # last test window, batch of 1: after the final forecast step
    last_window: dict  # which window the states belong to (logged beside them)

    @property
    def tracked_metrics(self) -> dict[str, float]:
        """Flat names for tracking: test_mae, ..., naive_test_mae, ..., test_rmse_skill."""
        flat = {f"test_{k}": v for k, v in self.metrics.items()}
        flat |= {f"naive_test_{k}": v for k, v in self.naive_metrics.items()}
        # Skill > 0: the model beats the random walk; 1 - rmse / naive rmse.
        flat["test_rmse_skill"] = 1.0 - self.metrics["rmse"] / self.naive_metrics["rmse"]
        return flat


def evaluate(model: Seq2SeqModel, dataset: Dataset) -> Evaluation:
    test = dataset.test
    output = model.forecast(test.inputs)
    prices = forecast_to_prices(output.forecast, test.origin_prices, dataset.scaler, dataset.target)

    def last_row(states: NumpyStates) -> NumpyStates:
        return tuple(LSTMState(s.c[-1:], s.h[-1:]) for s in states)

    last = len(test) - 1
    origin = int(test.origin_index[last])
    dates = dataset.prices.index
    last_window = {
        "layout": "per layer k: c (cell state) then h (hidden state), each [1, num_units]; "
        "encoder_* is the state handed to the decoder as its initial state",
        "num_layers": len(output.encoder_final_state),
        "num_units": int(output.encoder_final_state[0].c.shape[1]),
        "window": {
            "split": "test",
            "index": last,
            "origin_date": f"{dates[origin]:%Y-%m-%d}",
            "origin_price": float(test.origin_prices[last]),
            "first_input_date": f"{dates[origin - dataset.lookback + 1]:%Y-%m-%d}",
            "lookback": dataset.lookback,
            "horizon": dataset.horizon,
            "encoder_initial_state": "zeros",
        },
    }
    return Evaluation(
        forecast_prices=prices,
        metrics=forecast_metrics(
            prices, test.actual_prices, test.origin_prices, dataset.mase_scale
        ),
        naive_metrics=forecast_metrics(
            naive_forecast(test.origin_prices, dataset.horizon),
            test.actual_prices,
            test.origin_prices,
            dataset.mase_scale,
        ),
        last_encoder_state=last_row(output.encoder_final_state),
        last_decoder_state=last_row(output.decoder_final_state),
        last_window=last_window,
    )

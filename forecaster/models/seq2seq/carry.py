"""Forecasting with the encoder state carried across the whole series (`model.state=carry`).

With `model.state=window` (the default) each origin's forecast encodes the `lookback` bars up to
it from a zero state. With `carry`, the encoder runs bar by bar over the whole series, from its
first target value, and each origin's forecast starts from the state that has seen every bar up
to the origin, like a GARCH filter's variance, so a volatile month is remembered longer than the
lookback. The run is sequential in time: the state at an origin is computed from the bars before
it only (never from later ones), in chunks of at most `CHUNK` bars per `sess.run`.
"""

from __future__ import annotations

import numpy as np

from forecaster.models.seq2seq.network import ForecastOutput, Seq2SeqModel
from forecaster.models.seq2seq.state import LSTMState, NumpyStates

CHUNK = 1024  # bars per encoder run between origins: bounds the memory of one call


def carried_forecast(
    network: Seq2SeqModel, series: np.ndarray, origins: np.ndarray
) -> ForecastOutput:
    """Forecast from each of `origins` (indices into `series`, the scaled target [T] float32)
    with the encoder state carried from `series[0]`; one row per origin, in the given order."""
    series = np.asarray(series, dtype=np.float32)
    order = np.unique(origins)
    rows: dict[int, ForecastOutput] = {}
    state: NumpyStates | None = None
    position = 0  # the next bar the state has not seen
    for origin in order:
        for start in range(position, origin, CHUNK):  # the bars before the origin
            chunk = series[start : min(start + CHUNK, origin)]
            state = network.encode(chunk[None, :, None], initial_state=state)
        # The origin's bar goes through the encoder inside `forecast`, whose final encoder state
        # is the state after the origin: carried on to the next origin.
        out = network.forecast(series[None, origin : origin + 1, None], initial_state=state)
        rows[int(origin)] = out
        state, position = out.encoder_final_state, int(origin) + 1
    picked = [rows[int(origin)] for origin in origins]
    return ForecastOutput(
        forecast=np.concatenate([out.forecast for out in picked]),
        encoder_final_state=_stack([out.encoder_final_state for out in picked]),
        decoder_final_state=_stack([out.decoder_final_state for out in picked]),
        distribution=None
        if picked[0].distribution is None
        else np.concatenate([out.distribution for out in picked]),
    )


def _stack(states: list[NumpyStates]) -> NumpyStates:
    layers = len(states[0])
    return tuple(
        LSTMState(
            np.concatenate([s[k].c for s in states]), np.concatenate([s[k].h for s in states])
        )
        for k in range(layers)
    )

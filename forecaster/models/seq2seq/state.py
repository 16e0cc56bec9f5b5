"""LSTM state: one layer's `(c, h)`, and the same as numpy arrays for files, the wire and feeds.

The layout is fixed everywhere: per layer, `c` (cell state) then `h` (hidden state); layers in
order. Named arrays are `<prefix>_c_<k>` and `<prefix>_h_<k>`, each `[batch, num_units]`. The
flat form concatenates `[c_0, h_0, c_1, h_1, ...]` for one row. Nothing here imports
TensorFlow: `LSTMState` holds graph tensors in the graph code and numpy arrays everywhere else.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from forecaster.errors import ConfigError, DataError


class LSTMState(NamedTuple):
    """One layer's state. `c` (cell) first, `h` (hidden/output) second."""

    c: Any
    h: Any


NumpyStates = tuple[LSTMState, ...]  # per layer (c, h), numpy arrays [batch, num_units]


def to_arrays(prefix: str, states: NumpyStates) -> dict[str, np.ndarray]:
    arrays = {}
    for k, state in enumerate(states):
        arrays[f"{prefix}_c_{k}"] = np.asarray(state.c)
        arrays[f"{prefix}_h_{k}"] = np.asarray(state.h)
    return arrays


def from_arrays(arrays, prefix: str) -> NumpyStates:
    """Read `<prefix>_c_k`, `<prefix>_h_k` for k = 0, 1, ... until a layer is missing."""
    states = []
    while f"{prefix}_c_{len(states)}" in arrays:
        k = len(states)
        states.append(
            LSTMState(np.asarray(arrays[f"{prefix}_c_{k}"]), np.asarray(arrays[f"{prefix}_h_{k}"]))
        )
    if not states:
        raise ConfigError(f"no '{prefix}_c_0' array found; arrays present: {sorted(arrays)}")
    return tuple(states)


def pack(states: NumpyStates) -> np.ndarray:
    """One row's state as a flat vector `[c_0, h_0, c_1, h_1, ...]`."""
    return np.concatenate([np.ravel(part) for state in states for part in (state.c, state.h)])


def unpack(vector, num_layers: int, num_units: int) -> NumpyStates:
    """Inverse of `pack`, as a batch of 1."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    expected = 2 * num_layers * num_units
    if vector.size != expected:
        raise ConfigError(
            f"a packed state has {vector.size} values; this model needs {expected} "
            f"(2 x {num_layers} layers x {num_units} units, laid out [c_0, h_0, c_1, h_1, ...])"
        )
    parts = vector.reshape(num_layers, 2, 1, num_units)
    return tuple(LSTMState(layer[0], layer[1]) for layer in parts)


def state_feed(placeholders, states, batch_size: int) -> dict:
    """The feed dict that puts numpy `states` into the graph's per-layer `(c, h)` placeholders.

    `states` has one entry per layer; a layer, or its `c` or `h`, given as None is not fed, so
    the placeholder keeps its default (zeros for the encoder's initial state). Each part fed
    must be `[batch_size, num_units]`.
    """
    if states is None:
        return {}
    if len(states) != len(placeholders):
        raise DataError(
            f"initial_state has {len(states)} layers; the model has {len(placeholders)} "
            "(model.num_layers)."
        )
    feed = {}
    for k, (state, placeholder) in enumerate(zip(states, placeholders, strict=True)):
        if state is None:
            continue
        for part in ("c", "h"):
            value = getattr(state, part)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float32)
            tensor = getattr(placeholder, part)
            expected = (batch_size, int(tensor.shape[-1]))
            if value.shape != expected:
                raise DataError(
                    f"initial state layer {k} {part} has shape {value.shape}; expected "
                    f"{expected} (batch, model.num_units)."
                )
            if not np.all(np.isfinite(value)):
                raise DataError(
                    f"initial state layer {k} {part} holds NaN or infinite values; a state "
                    "comes from an earlier forecast of the same model, unchanged."
                )
            feed[tensor] = value
    return feed

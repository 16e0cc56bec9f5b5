"""LSTM states as numpy data: named arrays for files, one flat vector for the wire.

The layout is fixed everywhere: per layer, `c` (cell state) then `h` (hidden state); layers in
order. Named arrays are `<prefix>_c_<k>` and `<prefix>_h_<k>`, each `[batch, num_units]`. The
flat form concatenates `[c_0, h_0, c_1, h_1, ...]` for one row.
"""

from __future__ import annotations

import numpy as np

from forecaster.errors import ConfigError
from forecaster.lstm import LSTMState

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

"""The encoder state carried across the whole series: forecasting with it (`model.state=carry`)
and training with it (`train.carry=true`, truncated backpropagation through time).

With `model.state=window` (the default) each origin's forecast encodes the `lookback` bars up to
it from a zero state. With `carry`, the encoder runs bar by bar over the whole series, from its
first target value, and each origin's forecast starts from the state that has seen every bar up
to the origin, like a GARCH filter's variance, so a volatile month is remembered longer than the
lookback. The run is sequential in time: the state at an origin is computed from the bars before
it only (never from later ones), in chunks of at most `CHUNK` bars per `sess.run`.

A network trained on windows from zeros has never seen a state that has run for thousands of
bars; `CarriedStateTraining` trains it on such states: consecutive chunks of the training series
(`forecaster.data.chunks`), each starting from the state the previous chunk ended with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forecaster.data.chunks import ChunkSet
from forecaster.models.seq2seq.network import ForecastOutput, Seq2SeqModel
from forecaster.models.seq2seq.state import LSTMState, NumpyStates, from_arrays, to_arrays

CHUNK = 1024  # bars per encoder run between origins: bounds the memory of one call


def carried_states(network: Seq2SeqModel, series: np.ndarray, origins: np.ndarray) -> NumpyStates:
    """Every layer's `(c, h)` [len(origins), num_units] after encoding `series[:origin]` (the
    bars before each origin) in one pass from a zero state; `origins` increasing."""
    origins = np.asarray(origins, dtype=np.int64)
    if len(origins) > 1 and np.any(np.diff(origins) < 0):
        raise ValueError("carried_states walks forward in time: origins must be increasing")
    zeros = np.zeros((1, network.spec.num_units), np.float32)
    state: NumpyStates = tuple(LSTMState(zeros, zeros) for _ in range(network.spec.num_layers))
    rows: list[NumpyStates] = []
    position = 0  # the next bar the state has not seen
    for origin in origins:
        for start in range(position, origin, CHUNK):
            chunk = series[start : min(start + CHUNK, origin)]
            state = network.encode(chunk[None, :, None], initial_state=state)
        rows.append(state)
        position = max(position, int(origin))
    return _stack(rows)


def carried_forecast(
    network: Seq2SeqModel, series: np.ndarray, origins: np.ndarray
) -> ForecastOutput:
    """Forecast from each of `origins` (indices into `series`, the scaled target [T] float32)
    with the encoder state carried from `series[0]`; one row per origin, in the given order."""
    series = np.asarray(series, dtype=np.float32)
    order = np.unique(origins)
    states = carried_states(network, series, order)
    # One origin per run, its own bar through the forecast's encoder from the state before it:
    # a forecast does not depend, not even in its last bit, on the other origins asked for.
    outputs = [
        network.forecast(series[None, origin : origin + 1, None], initial_state=_take(states, [i]))
        for i, origin in enumerate(order)
    ]
    picked = [outputs[i] for i in np.searchsorted(order, origins)]
    return ForecastOutput(
        forecast=np.concatenate([out.forecast for out in picked]),
        encoder_final_state=_stack([out.encoder_final_state for out in picked]),
        decoder_final_state=_stack([out.decoder_final_state for out in picked]),
        distribution=None
        if picked[0].distribution is None
        else np.concatenate([out.distribution for out in picked]),
    )


class CarriedStateTraining:
    """A `Seq2SeqModel` trained with its encoder state carried from chunk to chunk (the
    `Trainable` the training loop fits when `train.carry=true`).

    The loop hands it the batches of a `ChunkSet` in time order, batch b being chunk b of every
    stream. Chunk b starts from the final encoder `(c, h)` of every layer that chunk b - 1 ended
    with (fed from numpy through the state placeholders; truncated backpropagation through time:
    no gradient crosses a chunk boundary); the decoder is trained from each chunk's end. At the
    start of every epoch each stream's state is reset to the state of encoding the series from
    its first bar up to the stream's start (zeros for a stream starting there), with the weights
    of that moment and from a zero state, which is what a carried forecast starts from. The
    validation loss is the carried forecast's, from the state that has seen every bar before
    each validation origin.

    A checkpoint inside an epoch holds the state being carried (`save_variables`), so a resumed
    fit continues exactly where it stopped.
    """

    def __init__(
        self,
        network: Seq2SeqModel,
        chunks: ChunkSet,
        series: np.ndarray,
        val_origins: np.ndarray | None = None,
    ) -> None:
        self.network = network
        self.chunks = chunks
        self.series = np.asarray(series, dtype=np.float32)  # scaled target, training + validation
        self.val_origins = None if val_origins is None else np.asarray(val_origins, np.int64)
        self._batch = 0  # batches of the epoch done
        self._state: NumpyStates | None = None  # the state each stream's next chunk starts from

    def train_step(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        if self._batch % self.chunks.chunks == 0:  # a new epoch: every stream starts afresh
            self._batch, self._state = 0, self.stream_start_states()
        loss, self._state = self.network.train_chunk(inputs, targets, self._state)
        self._batch += 1
        return loss

    def stream_start_states(self) -> NumpyStates:
        """Each stream's state at its first bar: the series before it encoded from zeros."""
        return carried_states(self.network, self.series, self.chunks.starts)

    def validation_loss(self, inputs: np.ndarray, targets: np.ndarray) -> float:
        """The carried forecast's loss at the validation origins (`inputs`, the validation
        windows, are not read: the state comes from the whole series before each origin)."""
        origins = self.val_origins
        if origins is None or len(origins) != len(targets):
            raise ValueError("CarriedStateTraining was given no validation origins for these")
        states = carried_states(self.network, self.series, origins)
        return self.network.validation_loss(
            self.series[origins][:, None, None], targets, initial_state=states
        )

    def get_weights(self) -> dict[str, np.ndarray]:
        return self.network.get_weights()

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        self.network.set_weights(weights)

    def save_variables(self, prefix: Path) -> None:
        self.network.save_variables(prefix)
        arrays = {} if self._state is None else to_arrays("carried", self._state)
        np.savez(_carried_path(prefix), batch=np.int64(self._batch), **arrays)

    def restore_variables(self, prefix: Path) -> None:
        self.network.restore_variables(prefix)
        if not _carried_path(prefix).exists():  # a checkpoint of training on windows
            self._batch, self._state = 0, None
            return
        with np.load(_carried_path(prefix)) as arrays:
            self._batch = int(arrays["batch"])
            self._state = from_arrays(arrays, "carried") if "carried_c_0" in arrays else None


def _carried_path(prefix: Path) -> Path:
    return Path(f"{prefix}.carried.npz")


def _stack(states: list[NumpyStates]) -> NumpyStates:
    layers = len(states[0])
    return tuple(
        LSTMState(
            np.concatenate([s[k].c for s in states]), np.concatenate([s[k].h for s in states])
        )
        for k in range(layers)
    )


def _take(states: NumpyStates, rows) -> NumpyStates:
    return tuple(LSTMState(s.c[rows], s.h[rows]) for s in states)

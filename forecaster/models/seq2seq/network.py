"""A seq2seq network in its own `tf.Graph` with its own Session: numpy in, numpy out.

Every network (each run, test and sweep job) gets a fresh graph, so building twice in one
process never collides on variable names. It holds the training graph (`graph.py`); the
single-step ops are added to it the first time they are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Self

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from forecaster.models.seq2seq.graph import StepGraph, build_step_graph, build_training_graph
from forecaster.models.seq2seq.outputs import POINT
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.models.seq2seq.state import LSTMState, NumpyStates, state_feed
from forecaster.training.precision import check_precision


@dataclass(frozen=True)
class WindowInputs:
    """Windows with what a model reads besides them: the ticker of each (an index into a
    global model's tickers, -1 for one it was not trained on) and the known-future covariates
    of each forecast step. Sliced like an array, so the training loop batches them as it
    batches plain windows."""

    values: np.ndarray  # [n, T, F] scaled inputs (feature 0 the target, then past covariates)
    tickers: np.ndarray | None = None  # [n] int32, for a model with a ticker embedding
    future: np.ndarray | None = None  # [n, H, C] float32, for a model with decoder covariates

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows) -> WindowInputs:
        return WindowInputs(
            self.values[rows],
            None if self.tickers is None else self.tickers[rows],
            None if self.future is None else self.future[rows],
        )


Inputs = np.ndarray | WindowInputs


class ForecastOutput(NamedTuple):
    forecast: np.ndarray  # [B, H] scaled forecast
    encoder_final_state: NumpyStates  # per layer (c, h): the state handed to the decoder
    decoder_final_state: NumpyStates  # per layer (c, h): after the last forecast step
    # [B, H, P] a distributional output's distribution of each step's cumulative scaled return
    # (`outputs`); None for a point output
    distribution: np.ndarray | None = None


class OwnsNetwork:
    """A forecaster holding a fitted `Seq2SeqModel` in `network_` (its graph and Session): closes
    it, also as a context manager."""

    network_: Seq2SeqModel | None = None

    def close(self) -> None:
        """Free the network's Session (a fitted model holds one)."""
        if self.network_ is not None:
            self.network_.close()
            self.network_ = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Seq2SeqModel:
    """Owns a training graph built from `spec`, a Session, and the feeds/fetches to run it."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        seed: int = 0,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
        precision: str = "float32",
    ) -> None:
        self.spec = spec
        self.graph = tf.Graph()
        with self.graph.as_default():
            # The graph-level seed makes variable initialisers and dropout masks reproducible.
            tf.compat.v1.set_random_seed(seed)
            self.tensors = build_training_graph(spec)
            self._trainable = tf.compat.v1.trainable_variables()
            # Assign ops built once: restoring weights (early stopping) adds nothing to the graph.
            self._assign_values = {
                v.op.name: tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape)
                for v in self._trainable
            }
            self._assign = tf.group(
                *[v.assign(self._assign_values[v.op.name]) for v in self._trainable]
            )
            variables = tf.compat.v1.global_variables()
            # Checkpoints hold every variable: the weights and the optimiser's slots.
            self._saver = tf.compat.v1.train.Saver(
                variables, max_to_keep=None, save_relative_paths=True
            )
            # `reset` puts every variable back to its initial value through these.
            self._reset_values = [
                tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape) for v in variables
            ]
            self._reset = tf.group(
                *[v.assign(value) for v, value in zip(variables, self._reset_values, strict=True)]
            )
            initialize = tf.compat.v1.global_variables_initializer()
        self._step: StepGraph | None = None
        # Scheduled sampling reads the epoch off the step counter: the fit sets the epoch's
        # length in steps (ceil(windows / batch size)).
        self.steps_per_epoch = 1
        self.seed = seed
        self.threads = (intra_op_threads, inter_op_threads)
        self.precision = precision
        config = session_config(intra_op_threads, inter_op_threads, precision)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.session.run(initialize)
        self._initial_values = self.session.run(variables)

    def _feed(
        self,
        inputs: Inputs,
        targets: np.ndarray | None = None,
        initial_state: NumpyStates | None = None,
        lengths: np.ndarray | None = None,
    ) -> dict:
        t = self.tensors
        if not isinstance(inputs, WindowInputs):
            inputs = WindowInputs(inputs)
        if (inputs.tickers is None) != (t.ticker_ids is None):
            raise ValueError(
                "this model embeds tickers: feed WindowInputs with tickers"
                if inputs.tickers is None
                else "this model has no ticker embedding: feed no tickers"
            )
        if (inputs.future is None) != (t.decoder_covariates is None):
            raise ValueError(
                "this model reads decoder covariates: feed WindowInputs with future"
                if inputs.future is None
                else "this model has no decoder covariates: feed no future"
            )
        feed = {t.encoder_inputs: inputs.values}
        if inputs.tickers is not None:
            feed[t.ticker_ids] = inputs.tickers
        if inputs.future is not None:
            feed[t.decoder_covariates] = inputs.future
        if targets is not None:
            feed[t.decoder_targets] = targets
        if lengths is not None:
            feed[t.encoder_lengths] = lengths
        feed.update(state_feed(t.encoder_initial_state, initial_state, len(inputs)))
        return feed

    # -- training ----------------------------------------------------------------------------
    def train_step(
        self, inputs: Inputs, targets: np.ndarray, lengths: np.ndarray | None = None
    ) -> float:
        """One optimiser step on a batch with dropout on. Returns the batch's training loss (MSE
        for a point output: teacher-forced, or with scheduled sampling the sampled decoder's)."""
        return self._train(inputs, targets, lengths, None)[0]

    def train_chunk(
        self, inputs: Inputs, targets: np.ndarray, initial_state: NumpyStates | None
    ) -> tuple[float, NumpyStates]:
        """One optimiser step on a batch of chunks whose encoder starts from `initial_state`
        (truncated backpropagation through time: no gradient flows into it). Returns the loss
        and every layer's final encoder `(c, h)` of this same pass, which the next chunks of
        the same streams start from (`carry.CarriedStateTraining`)."""
        return self._train(inputs, targets, None, initial_state)

    def _train(
        self,
        inputs: Inputs,
        targets: np.ndarray,
        lengths: np.ndarray | None,
        initial_state: NumpyStates | None,
    ) -> tuple[float, NumpyStates]:
        t = self.tensors
        feed = self._feed(inputs, targets, initial_state, lengths)
        feed[t.dropout_rate] = self.spec.dropout
        if t.steps_per_epoch is not None:
            feed[t.steps_per_epoch] = self.steps_per_epoch
        # The final state is computed in the forward pass the gradients come from, so it is
        # the state before this step's update.
        loss, final_state, _ = self.session.run([t.loss, t.encoder_final_state, t.train_op], feed)
        return float(loss), _as_states(final_state)

    def validation_loss(
        self,
        inputs: Inputs,
        targets: np.ndarray,
        batch_size: int = 1024,
        initial_state: NumpyStates | None = None,
    ) -> float:
        """The loss (MSE for a point output) of the autoregressive forecast over all windows
        (what validation measures), each encoded from `initial_state` (zeros when None)."""
        total = 0.0
        for start in range(0, len(inputs), batch_size):
            stop = start + batch_size
            state = None if initial_state is None else _rows(initial_state, start, stop)
            batch_loss = self.session.run(
                self.tensors.forecast_loss,
                self._feed(inputs[start:stop], targets[start:stop], state),
            )
            total += float(batch_loss) * len(inputs[start:stop])
        return total / len(inputs)

    # -- inference ---------------------------------------------------------------------------
    def forecast(
        self,
        inputs: Inputs,
        *,
        initial_state: NumpyStates | None = None,
        lengths: np.ndarray | None = None,
    ) -> ForecastOutput:
        """Autoregressive forecast for a batch, with the encoder and decoder final states."""
        t = self.tensors
        fetches = [t.forecast, t.encoder_final_state, t.decoder_final_state]
        if t.distribution is not None:
            fetches.append(t.distribution)
        forecast, encoder_final, decoder_final, *distribution = self.session.run(
            fetches, self._feed(inputs, initial_state=initial_state, lengths=lengths)
        )
        return ForecastOutput(
            forecast,
            _as_states(encoder_final),
            _as_states(decoder_final),
            distribution[0] if distribution else None,
        )

    def encode(
        self,
        inputs: Inputs,
        *,
        initial_state: NumpyStates | None = None,
        lengths: np.ndarray | None = None,
    ) -> NumpyStates:
        """Run the encoder only; return every layer's final `(c, h)`.

        Feeding the returned state back as `initial_state` for the next chunk of a series
        continues the series: chunked encoding equals one pass (streaming).
        """
        fetched = self.session.run(
            self.tensors.encoder_final_state,
            self._feed(inputs, initial_state=initial_state, lengths=lengths),
        )
        return _as_states(fetched)

    def forecast_step_by_step(
        self, inputs: np.ndarray, *, initial_state: NumpyStates | None = None
    ) -> ForecastOutput:
        """The same forecast as `forecast`, one `sess.run` per timestep.

        Encoder: each bar advances every layer's `(c, h)`, fetched and fed back through
        placeholders. Decoder: starts from the encoder's final state and the last observed
        value, and feeds each prediction back as the next input. Point output only.
        """
        if self.spec.output != POINT:
            raise ValueError(
                f"forecast_step_by_step decodes a point output; model.output={self.spec.output!r}"
            )
        step = self._step_graph()
        batch = len(inputs)
        zeros = np.zeros((batch, self.spec.num_units), np.float32)
        state = initial_state or tuple(LSTMState(zeros, zeros) for _ in range(self.spec.num_layers))
        for t in range(inputs.shape[1]):
            feed = {step.encoder_input: inputs[:, t]} | state_feed(step.encoder_state, state, batch)
            state = _as_states(self.session.run(step.encoder_next_state, feed))
        encoder_final = state
        prediction = inputs[:, -1, 0]
        predictions = []
        for _ in range(self.spec.horizon):
            feed = {step.decoder_input: prediction} | state_feed(step.decoder_state, state, batch)
            prediction, fetched = self.session.run(
                [step.decoder_prediction, step.decoder_next_state], feed
            )
            state = _as_states(fetched)
            predictions.append(prediction)
        return ForecastOutput(np.stack(predictions, axis=1), encoder_final, state)

    def _step_graph(self) -> StepGraph:
        if self._step is None:
            with self.graph.as_default():
                self._step = build_step_graph(self.spec, self.tensors.weights)
        return self._step

    # -- weights and checkpoints -------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        values = self.session.run(self._trainable)
        return {v.op.name: value for v, value in zip(self._trainable, values, strict=True)}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        feed = {value: weights[name] for name, value in self._assign_values.items()}
        self.session.run(self._assign, feed)

    def reset(self) -> None:
        """Every variable back to its value right after initialisation (weights, optimiser slots,
        step counter): the same state as a new network of the same spec and seed, without the
        cost of building one (a backtest refits once per fold)."""
        feed = dict(zip(self._reset_values, self._initial_values, strict=True))
        self.session.run(self._reset, feed)

    def save_variables(self, prefix: Path) -> None:
        """Every variable (weights and optimiser slots) to `prefix.index` / `prefix.data-*`."""
        with self.graph.as_default():  # outside it TF 2 runs eagerly, where a Saver refuses
            self._saver.save(self.session, str(prefix), write_meta_graph=False, write_state=False)

    def restore_variables(self, prefix: Path) -> None:
        with self.graph.as_default():
            self._saver.restore(self.session, str(prefix))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Seq2SeqModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def session_config(
    intra_op_threads: int, inter_op_threads: int, precision: str
) -> tf.compat.v1.ConfigProto:
    """Threads, and for `precision="bf16"` oneDNN's mixed-precision rewrite, which runs the ops it
    knows to be safe in bf16 and keeps the rest (and every variable) float32."""
    check_precision(precision)
    config = tf.compat.v1.ConfigProto(
        intra_op_parallelism_threads=intra_op_threads,
        inter_op_parallelism_threads=inter_op_threads,
    )
    if precision == "bf16":
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = (
            rewriter_config_pb2.RewriterConfig.ON
        )
    return config


def _as_states(fetched) -> NumpyStates:
    return tuple(LSTMState(np.asarray(s.c), np.asarray(s.h)) for s in fetched)


def _rows(states: NumpyStates, start: int, stop: int) -> NumpyStates:
    return tuple(LSTMState(s.c[start:stop], s.h[start:stop]) for s in states)

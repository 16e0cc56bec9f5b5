"""A seq2seq model in its own `tf.Graph` with its own Session.

Every model (each run, test and sweep job) gets a fresh graph, so building twice in one process
never collides on variable names. This is the only place a Session is opened for training.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from forecaster.graph import ModelSpec, Seq2SeqGraph, build_seq2seq
from forecaster.lstm import LSTMState
from forecaster.states import NumpyStates

SERVING_TAG = "serve"
SIGNATURE_KEY = "serving_default"


class ForecastOutput(NamedTuple):
    forecast: np.ndarray  # [B, H] scaled forecast
    encoder_final_state: NumpyStates  # per layer (c, h): the state handed to the decoder
    decoder_final_state: NumpyStates  # per layer (c, h): after the last forecast step


class Seq2SeqModel:
    """Owns a graph built from `spec`, a Session, and the feeds/fetches to run it."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        seed: int = 0,
        intra_op_threads: int = 2,
        inter_op_threads: int = 1,
    ) -> None:
        self.spec = spec
        self.graph = tf.Graph()
        with self.graph.as_default():
            # The graph-level seed makes variable initialisers and dropout masks reproducible.
            tf.compat.v1.set_random_seed(seed)
            self.tensors: Seq2SeqGraph = build_seq2seq(spec)
            self._trainable = tf.compat.v1.trainable_variables()
            # Assign ops built once: restoring weights (early stopping) adds nothing to the graph.
            self._assign_values = {
                v.op.name: tf.compat.v1.placeholder(v.dtype.base_dtype, v.shape)
                for v in self._trainable
            }
            self._assign = tf.group(
                *[v.assign(self._assign_values[v.op.name]) for v in self._trainable]
            )
            initialize = tf.compat.v1.global_variables_initializer()
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=intra_op_threads,
            inter_op_parallelism_threads=inter_op_threads,
        )
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)
        self.session.run(initialize)

    # -- feeds -------------------------------------------------------------------------------
    def _feed(
        self,
        inputs: np.ndarray,
        targets: np.ndarray | None = None,
        initial_state: NumpyStates | None = None,
        lengths: np.ndarray | None = None,
    ) -> dict:
        t = self.tensors
        feed = {t.encoder_inputs: inputs}
        if targets is not None:
            feed[t.decoder_targets] = targets
        if lengths is not None:
            feed[t.encoder_lengths] = lengths
        if initial_state is not None:
            feed.update(self.state_feed(initial_state, len(inputs)))
        return feed

    def state_feed(self, initial_state: NumpyStates, batch_size: int) -> dict:
        """Feed for the encoder's initial state. `None` for a layer, c or h keeps its zeros."""
        if len(initial_state) != self.spec.num_layers:
            raise ValueError(
                f"initial_state has {len(initial_state)} layers; the model has "
                f"{self.spec.num_layers} (model.num_layers)."
            )
        expected = (batch_size, self.spec.num_units)
        feed = {}
        for k, (fed, placeholder) in enumerate(
            zip(initial_state, self.tensors.encoder_initial_state, strict=True)
        ):
            if fed is None:
                continue
            for part in ("c", "h"):
                value = getattr(fed, part)
                if value is None:
                    continue
                value = np.asarray(value, dtype=np.float32)
                if value.shape != expected:
                    raise ValueError(
                        f"initial state layer {k} {part} has shape {value.shape}; "
                        f"expected {expected} (batch, model.num_units)."
                    )
                feed[getattr(placeholder, part)] = value
        return feed

    # -- training ----------------------------------------------------------------------------
    def train_step(
        self, inputs: np.ndarray, targets: np.ndarray, lengths: np.ndarray | None = None
    ) -> float:
        """One optimiser step on a batch with dropout on. Returns the batch's teacher-forced MSE."""
        t = self.tensors
        feed = self._feed(inputs, targets, lengths=lengths)
        feed[t.dropout_rate] = self.spec.dropout
        loss, _ = self.session.run([t.loss, t.train_op], feed)
        return float(loss)

    def forecast_loss(
        self, inputs: np.ndarray, targets: np.ndarray, batch_size: int = 1024
    ) -> float:
        """MSE of the autoregressive forecast over all windows (what validation measures)."""
        total = 0.0
        for start in range(0, len(inputs), batch_size):
            stop = start + batch_size
            batch_loss = self.session.run(
                self.tensors.forecast_loss, self._feed(inputs[start:stop], targets[start:stop])
            )
            total += float(batch_loss) * len(inputs[start:stop])
        return total / len(inputs)

    # -- inference ---------------------------------------------------------------------------
    def forecast(
        self,
        inputs: np.ndarray,
        *,
        initial_state: NumpyStates | None = None,
        lengths: np.ndarray | None = None,
    ) -> ForecastOutput:
        """Autoregressive forecast for a batch, with the encoder and decoder final states."""
        t = self.tensors
        forecast, encoder_final, decoder_final = self.session.run(
            [t.forecast, t.encoder_final_state, t.decoder_final_state],
            self._feed(inputs, initial_state=initial_state, lengths=lengths),
        )
        return ForecastOutput(forecast, _as_states(encoder_final), _as_states(decoder_final))

    def encode(
        self,
        inputs: np.ndarray,
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
        value, and feeds each prediction back as the next input.
        """
        step = self.tensors.step
        batch = len(inputs)
        zeros = np.zeros((batch, self.spec.num_units), np.float32)
        state = initial_state or tuple(LSTMState(zeros, zeros) for _ in range(self.spec.num_layers))
        for t in range(inputs.shape[1]):
            feed = {step.encoder_input: inputs[:, t]} | _state_dict(step.encoder_state, state)
            state = _as_states(self.session.run(step.encoder_next_state, feed))
        encoder_final = state
        prediction = inputs[:, -1, 0]
        predictions = []
        for _ in range(self.spec.horizon):
            feed = {step.decoder_input: prediction} | _state_dict(step.decoder_state, state)
            prediction, fetched = self.session.run(
                [step.decoder_prediction, step.decoder_next_state], feed
            )
            state = _as_states(fetched)
            predictions.append(prediction)
        return ForecastOutput(np.stack(predictions, axis=1), encoder_final, state)

    # -- weights -----------------------------------------------------------------------------
    def get_weights(self) -> dict[str, np.ndarray]:
        values = self.session.run(self._trainable)
        return {v.op.name: value for v, value in zip(self._trainable, values, strict=True)}

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        feed = {value: weights[name] for name, value in self._assign_values.items()}
        self.session.run(self._assign, feed)

    def export_saved_model(self, path: str | Path) -> Path:
        """Write a TF1 SavedModel whose signature takes inputs and initial states."""
        t = self.tensors
        inputs = {"encoder_inputs": t.encoder_inputs, "encoder_lengths": t.encoder_lengths}
        outputs = {"forecast": t.forecast}
        for k in range(self.spec.num_layers):
            for part in ("c", "h"):
                inputs[f"initial_{part}_{k}"] = getattr(t.encoder_initial_state[k], part)
                outputs[f"encoder_{part}_{k}"] = getattr(t.encoder_final_state[k], part)
                outputs[f"decoder_{part}_{k}"] = getattr(t.decoder_final_state[k], part)
        path = Path(path)
        with self.graph.as_default():
            signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
                inputs=inputs, outputs=outputs
            )
            builder = tf.compat.v1.saved_model.Builder(str(path))
            builder.add_meta_graph_and_variables(
                self.session, [SERVING_TAG], signature_def_map={SIGNATURE_KEY: signature}
            )
            builder.save()
        return path

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Seq2SeqModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _state_dict(placeholders, states: NumpyStates) -> dict:
    return {
        getattr(p, part): getattr(s, part)
        for p, s in zip(placeholders, states, strict=True)
        for part in ("c", "h")
    }


def _as_states(fetched) -> NumpyStates:
    return tuple(LSTMState(np.asarray(s.c), np.asarray(s.h)) for s in fetched)

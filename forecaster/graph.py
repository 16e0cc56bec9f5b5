"""The seq2seq graph: placeholders, variables, encoder, explicit state hand-off, decoder, loss.

Builds into the current default graph; creates no Session and does no I/O. Callers build each
model in a fresh `tf.Graph()` (see `forecaster.model`), so two models never share variables.

Shapes: B batch, T lookback (may vary per feed), F input features, H horizon, U units.
The target is input feature 0; the decoder reads and writes the (scaled) target only.

- Encoder: `num_layers` stacked LSTMs over `encoder_inputs` [B, T, F], each layer starting from
  its fed initial `(c, h)` (zeros when not fed). Each row's final state is taken at its own last
  valid step, `encoder_lengths - 1`, so right-padding never leaks into the state.
- Hand-off: `decoder_initial_state` is the encoder's final `(c, h)` of every layer, layer k to
  layer k, as explicit named tensors.
- Decoder, training: teacher forcing. Step 0 reads the last observed target, step k the true
  target k-1.
- Decoder, inference: autoregressive. Step k reads the prediction of step k-1; the cell is run
  step by step with the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import tensorflow as tf

from forecaster.errors import ConfigError
from forecaster.lstm import (
    SEQUENCE_IMPLEMENTATIONS,
    LSTMState,
    LSTMWeights,
    lstm_step,
    make_lstm_weights,
    state_at,
)

LayerStates = tuple[LSTMState, ...]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that shapes the graph. Fields map one to one onto config keys."""

    horizon: int  # window.horizon
    num_features: int = 1
    num_units: int = 64  # model.num_units
    num_layers: int = 1  # model.num_layers
    dropout: float = 0.0  # model.dropout: rate on every layer's outputs, training only
    encoder: str = "fused"  # model.encoder: "fused" or "while_loop"
    learning_rate: float = 1e-3  # train.learning_rate
    clip_norm: float = 1.0  # train.clip_norm: gradients are clipped by global norm

    def __post_init__(self) -> None:
        checks = [
            (self.horizon >= 1, "window.horizon", "an integer >= 1"),
            (self.num_features >= 1, "num_features", "an integer >= 1"),
            (self.num_units >= 1, "model.num_units", "an integer >= 1"),
            (self.num_layers >= 1, "model.num_layers", "an integer >= 1"),
            (0.0 <= self.dropout < 1.0, "model.dropout", "a rate in [0, 1)"),
            (
                self.encoder in SEQUENCE_IMPLEMENTATIONS,
                "model.encoder",
                f"one of {sorted(SEQUENCE_IMPLEMENTATIONS)}",
            ),
            (self.learning_rate > 0, "train.learning_rate", "a number > 0"),
            (self.clip_norm > 0, "train.clip_norm", "a number > 0"),
        ]
        for ok, key, expected in checks:
            if not ok:
                value = getattr(self, key.split(".")[-1], None)
                raise ConfigError(f"{key}={value!r} is invalid: expected {expected}.")


class StepGraph(NamedTuple):
    """One timestep per `sess.run`, with every layer's `(c, h)` fed in and fetched out.

    Same weights as the sequence graph, no dropout. Running a window through these ops step by
    step gives the same states and forecast as one pass (tests/test_state.py).
    """

    encoder_input: tf.Tensor  # [B, F] one bar
    encoder_state: LayerStates  # fed: the state before the bar
    encoder_next_state: LayerStates  # fetched: the state after it
    decoder_input: tf.Tensor  # [B] the previous value (last observed, then each prediction)
    decoder_state: LayerStates
    decoder_next_state: LayerStates
    decoder_prediction: tf.Tensor  # [B] the next value (scaled)


class Seq2SeqGraph(NamedTuple):
    """The tensors a Session needs: what to feed, then what to fetch."""

    # Feeds
    encoder_inputs: tf.Tensor  # [B, T, F] scaled inputs; feature 0 is the target
    encoder_lengths: tf.Tensor  # [B] int32 valid steps per row (default: T)
    encoder_initial_state: LayerStates  # per layer (c, h), each [B, U] (default: zeros)
    decoder_targets: tf.Tensor  # [B, H] scaled targets (training and losses only)
    dropout_rate: tf.Tensor  # scalar, default 0.0; fed with model.dropout in training steps
    # Fetches
    encoder_final_state: LayerStates
    decoder_initial_state: LayerStates  # the hand-off: the encoder's final state, layer by layer
    forecast: tf.Tensor  # [B, H] autoregressive forecast (scaled)
    decoder_final_state: LayerStates  # the decoder's state after the last forecast step
    teacher_forced: tf.Tensor  # [B, H] teacher-forced outputs (scaled)
    loss: tf.Tensor  # MSE of the teacher-forced outputs: what training minimises
    forecast_loss: tf.Tensor  # MSE of the autoregressive forecast: what validation measures
    train_op: tf.Operation
    global_step: tf.Variable
    step: StepGraph


def _initial_state_placeholders(batch: tf.Tensor, spec: ModelSpec) -> LayerStates:
    zeros = tf.zeros(tf.stack([batch, spec.num_units]))
    shape = [None, spec.num_units]
    return tuple(
        LSTMState(
            tf.compat.v1.placeholder_with_default(zeros, shape, name=f"encoder_initial_c_{k}"),
            tf.compat.v1.placeholder_with_default(zeros, shape, name=f"encoder_initial_h_{k}"),
        )
        for k in range(spec.num_layers)
    )


def _named(states: LayerStates, prefix: str) -> LayerStates:
    return tuple(
        LSTMState(
            tf.identity(s.c, name=f"{prefix}_c_{k}"), tf.identity(s.h, name=f"{prefix}_h_{k}")
        )
        for k, s in enumerate(states)
    )


def build_seq2seq(spec: ModelSpec) -> Seq2SeqGraph:
    """Build the model into the current default graph and return its feeds and fetches."""
    encoder_inputs = tf.compat.v1.placeholder(
        tf.float32, [None, None, spec.num_features], name="encoder_inputs"
    )
    batch, steps = tf.shape(encoder_inputs)[0], tf.shape(encoder_inputs)[1]
    encoder_lengths = tf.compat.v1.placeholder_with_default(
        tf.fill([batch], steps), [None], name="encoder_lengths"
    )
    decoder_targets = tf.compat.v1.placeholder(
        tf.float32, [None, spec.horizon], name="decoder_targets"
    )
    dropout_rate = tf.compat.v1.placeholder_with_default(0.0, [], name="dropout_rate")
    encoder_initial_state = _initial_state_placeholders(batch, spec)

    units = spec.num_units
    encoder_weights = tuple(
        make_lstm_weights(f"encoder/layer_{k}", spec.num_features if k == 0 else units, units)
        for k in range(spec.num_layers)
    )
    decoder_weights = tuple(
        make_lstm_weights(f"decoder/layer_{k}", 1 if k == 0 else units, units)
        for k in range(spec.num_layers)
    )
    with tf.compat.v1.variable_scope("projection"):
        project_kernel = tf.compat.v1.get_variable(
            "kernel", [units, 1], initializer=tf.compat.v1.glorot_uniform_initializer()
        )
        project_bias = tf.compat.v1.get_variable(
            "bias", [1], initializer=tf.compat.v1.zeros_initializer()
        )

    def project(h: tf.Tensor) -> tf.Tensor:  # [..., U] -> [...]
        return tf.squeeze(tf.tensordot(h, project_kernel, axes=1) + project_bias, axis=-1)

    def dropout(x: tf.Tensor) -> tf.Tensor:
        return tf.nn.dropout(x, rate=dropout_rate)

    # Encoder, layer by layer over the whole window (time-major inside).
    last_step = encoder_lengths - 1
    layer_input = tf.transpose(encoder_inputs, [1, 0, 2])
    encoder_final = []
    run_sequence = SEQUENCE_IMPLEMENTATIONS[spec.encoder]
    for initial, weights in zip(encoder_initial_state, encoder_weights, strict=True):
        sequence = run_sequence(layer_input, initial, weights)
        encoder_final.append(state_at(sequence, last_step))
        layer_input = dropout(sequence.h)
    encoder_final_state = _named(tuple(encoder_final), "encoder_final")

    # The hand-off: each decoder layer starts from the matching encoder layer's final (c, h).
    decoder_initial_state = _named(encoder_final_state, "decoder_initial")

    rows = tf.range(batch)
    last_observed = tf.gather_nd(encoder_inputs[:, :, 0], tf.stack([rows, last_step], axis=1))

    # Teacher forcing: the decoder reads the previous true value at every step. The horizon is
    # fixed per graph, so the steps are unrolled: measured faster to train than running the
    # fused kernel over the horizon (W1: 5.5k vs 4.6k windows/s).
    previous_true = tf.concat([last_observed[:, None], decoder_targets[:, :-1]], axis=1)
    state = decoder_initial_state
    outputs = []
    for step in range(spec.horizon):
        state = _stack_step(previous_true[:, step, None], state, decoder_weights, dropout)
        outputs.append(project(dropout(state[-1].h)))
    teacher_forced = tf.stack(outputs, axis=1, name="teacher_forced")

    # Inference: the decoder reads its own previous prediction.
    forecast, decoder_final_state = _autoregressive_decode(
        last_observed, decoder_initial_state, decoder_weights, project, spec.horizon
    )
    forecast = tf.identity(forecast, name="forecast")
    decoder_final_state = _named(decoder_final_state, "decoder_final")

    loss = tf.reduce_mean(tf.square(teacher_forced - decoder_targets), name="loss")
    forecast_loss = tf.reduce_mean(tf.square(forecast - decoder_targets), name="forecast_loss")

    global_step = tf.compat.v1.train.get_or_create_global_step()
    optimizer = tf.compat.v1.train.AdamOptimizer(spec.learning_rate)
    gradients, variables = zip(*optimizer.compute_gradients(loss), strict=True)
    clipped, _ = tf.clip_by_global_norm(gradients, spec.clip_norm)
    train_op = optimizer.apply_gradients(
        zip(clipped, variables, strict=True), global_step, name="train_op"
    )

    return Seq2SeqGraph(
        encoder_inputs=encoder_inputs,
        encoder_lengths=encoder_lengths,
        encoder_initial_state=encoder_initial_state,
        decoder_targets=decoder_targets,
        dropout_rate=dropout_rate,
        encoder_final_state=encoder_final_state,
        decoder_initial_state=decoder_initial_state,
        forecast=forecast,
        decoder_final_state=decoder_final_state,
        teacher_forced=teacher_forced,
        loss=loss,
        forecast_loss=forecast_loss,
        train_op=train_op,
        global_step=global_step,
        step=_build_step_graph(spec, encoder_weights, decoder_weights, project),
    )


def _state_placeholders(prefix: str, spec: ModelSpec) -> LayerStates:
    shape = [None, spec.num_units]
    return tuple(
        LSTMState(
            tf.compat.v1.placeholder(tf.float32, shape, name=f"{prefix}_c_{k}"),
            tf.compat.v1.placeholder(tf.float32, shape, name=f"{prefix}_h_{k}"),
        )
        for k in range(spec.num_layers)
    )


def _stack_step(
    x: tf.Tensor,
    states: LayerStates,
    weights: tuple[LSTMWeights, ...],
    dropout=lambda h: h,
) -> LayerStates:
    """Advance every layer by one step; each layer reads the `h` of the layer below (through
    dropout in training)."""
    next_states = []
    for state, layer_weights in zip(states, weights, strict=True):
        next_state = lstm_step(x, state, layer_weights)
        next_states.append(next_state)
        x = dropout(next_state.h)
    return tuple(next_states)


def _build_step_graph(spec, encoder_weights, decoder_weights, project) -> StepGraph:
    encoder_input = tf.compat.v1.placeholder(
        tf.float32, [None, spec.num_features], name="step_encoder_input"
    )
    encoder_state = _state_placeholders("step_encoder_state", spec)
    decoder_input = tf.compat.v1.placeholder(tf.float32, [None], name="step_decoder_input")
    decoder_state = _state_placeholders("step_decoder_state", spec)
    decoder_next_state = _stack_step(decoder_input[:, None], decoder_state, decoder_weights)
    return StepGraph(
        encoder_input=encoder_input,
        encoder_state=encoder_state,
        encoder_next_state=_stack_step(encoder_input, encoder_state, encoder_weights),
        decoder_input=decoder_input,
        decoder_state=decoder_state,
        decoder_next_state=decoder_next_state,
        decoder_prediction=project(decoder_next_state[-1].h),
    )


def _autoregressive_decode(
    first_input: tf.Tensor,
    initial_state: LayerStates,
    weights: tuple[LSTMWeights, ...],
    project,
    horizon: int,
) -> tuple[tf.Tensor, LayerStates]:
    """Unrolled decode: `horizon` is fixed per graph, so a Python loop builds a static chain."""
    state = initial_state
    prediction = first_input  # [B]
    predictions = []
    for _ in range(horizon):
        state = _stack_step(prediction[:, None], state, weights)
        prediction = project(state[-1].h)
        predictions.append(prediction)
    return tf.stack(predictions, axis=1), state

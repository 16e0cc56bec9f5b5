"""The seq2seq graph, one per mode: placeholders, variables, encoder, explicit state hand-off,
decoder, and (in training mode) the loss and the train op.

Builds into the current default graph; creates no Session and does no I/O. Callers build each
model in a fresh `tf.Graph()` (see `network.py` and `export.py`), so two models never share
variables. As in tensorflow/nmt, each mode is its own graph: training (`build_training_graph`:
teacher forcing, loss, optimiser, plus the autoregressive forecast that validation scores) and
inference (`build_inference_graph`: what a SavedModel holds, with no optimiser state and no
dropout). Both create the same variables under the same names, so weights move between them.

Shapes: B batch, T lookback (may vary per feed), F input features, H horizon, U units.
The target is input feature 0; the decoder reads and writes the (scaled) target only.

- Encoder: `num_layers` stacked LSTMs over `encoder_inputs` [B, T, F], each layer starting from
  its fed initial `(c, h)` (zeros when not fed). Each row's final state is taken at its own last
  valid step, `encoder_lengths - 1`, so right-padding never leaks into the state.
- Hand-off: `decoder_initial_state` is the encoder's final `(c, h)` of every layer, layer k to
  layer k, as explicit named tensors.
- Decoder, training: teacher forcing. Step 0 reads the last observed target, step k the true
  target k-1; all known up front, so each layer runs over the horizon as one fused sequence op.
- Decoder, inference: autoregressive. Step k reads the prediction of step k-1; the cell is run
  step by step with the same weights, one fused op per layer and step.
- Distributional outputs (`model.output` = quantiles, student_t; `heads`): the projection gives
  P numbers per step that describe the cumulative return from the origin; the decoder feeds
  back the median path, and trains free-running on that same path (not teacher-forced), with
  the head's loss (pinball, negative log-likelihood).
- Inputs beyond the values (`inputs.py`): a global model's ticker vector appended to every
  encoder and decoder step, known-future covariates (`decoder_covariates` [B, H, C]) appended
  to each decoder step's input (past covariates are encoder features 1..F-1), and, with a
  teacher-forcing schedule below 1.0, a scheduled-sampling
  decoder whose outputs the training loss then reads.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import NamedTuple

import tensorflow as tf

from forecaster.models.seq2seq.heads import OutputHead
from forecaster.models.seq2seq.inputs import (
    TickerEmbedding,
    decoder_covariates,
    input_size,
    sampled_decode,
    sampling_seed,
    teacher_forcing_ratio,
    ticker_embedding,
    with_future,
    with_ticker,
)
from forecaster.models.seq2seq.lstm import (
    SEQUENCE_IMPLEMENTATIONS,
    LSTMWeights,
    fused_sequence,
    fused_step,
    lstm_step,
    make_lstm_weights,
    state_at,
)
from forecaster.models.seq2seq.outputs import POINT, initial_bias, num_params
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.models.seq2seq.state import LSTMState

LayerStates = tuple[LSTMState, ...]


class Seq2SeqWeights(NamedTuple):
    encoder: tuple[LSTMWeights, ...]  # layer by layer
    decoder: tuple[LSTMWeights, ...]
    # The top decoder layer's h to the next value (P = 1), or to the P numbers of a
    # distributional output (`heads`).
    projection_kernel: tf.Variable  # [U, P]
    projection_bias: tf.Variable  # [P]

    def project(self, h: tf.Tensor) -> tf.Tensor:  # [..., U] -> [...]; a point output's value
        return tf.squeeze(self.raw(h), axis=-1)

    def raw(self, h: tf.Tensor) -> tf.Tensor:  # [..., U] -> [..., P]
        return tf.tensordot(h, self.projection_kernel, axes=1) + self.projection_bias


class InferenceGraph(NamedTuple):
    """What a Session feeds and fetches to forecast."""

    # Feeds
    encoder_inputs: tf.Tensor  # [B, T, F] scaled inputs; feature 0 is the target
    encoder_lengths: tf.Tensor  # [B] int32 valid steps per row (default: T)
    encoder_initial_state: LayerStates  # per layer (c, h), each [B, U] (default: zeros)
    ticker_ids: tf.Tensor | None  # [B] int32, a global model's tickers (-1: new); else None
    decoder_covariates: tf.Tensor | None  # [B, H, C] known-future covariates; else None
    # Fetches
    encoder_final_state: LayerStates
    decoder_initial_state: LayerStates  # the hand-off: the encoder's final state, layer by layer
    forecast: tf.Tensor  # [B, H] autoregressive forecast (scaled); the median path's, for
    # a distributional output
    decoder_final_state: LayerStates  # the decoder's state after the last forecast step
    weights: Seq2SeqWeights
    # [B, H, P] a distributional output's distribution of each step's cumulative return
    # (`outputs`); None for `point`
    distribution: tf.Tensor | None


class TrainingGraph(NamedTuple):
    """The inference tensors, plus what training and validation need."""

    encoder_inputs: tf.Tensor
    encoder_lengths: tf.Tensor
    encoder_initial_state: LayerStates
    ticker_ids: tf.Tensor | None
    decoder_covariates: tf.Tensor | None
    encoder_final_state: LayerStates
    decoder_initial_state: LayerStates
    forecast: tf.Tensor
    decoder_final_state: LayerStates
    weights: Seq2SeqWeights
    distribution: tf.Tensor | None
    decoder_targets: tf.Tensor  # [B, H] scaled targets
    dropout_rate: tf.Tensor  # scalar, default 0.0; fed with model.dropout in training steps
    # [B, H] teacher-forced outputs (scaled; with scheduled sampling see `sampled`); for a
    # distributional output [B, H, P], the raw outputs of the free-running decoder it is trained
    # on
    teacher_forced: tf.Tensor
    # What training minimises, on `teacher_forced`: MSE for a point output, the head's loss
    # (pinball, negative log-likelihood) for a distributional one
    loss: tf.Tensor
    # Scheduled sampling only (else None): the share of true decoder inputs (default: the
    # schedule's value at the current epoch), the epoch's length in steps (fed), the outputs.
    teacher_forcing: tf.Tensor | None
    steps_per_epoch: tf.Tensor | None
    sampled: tf.Tensor | None
    forecast_loss: tf.Tensor  # the same loss of the autoregressive forecast: what validation
    # measures
    train_op: tf.Operation


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


def build_inference_graph(spec: ModelSpec) -> InferenceGraph:
    """Build the forecasting graph (no targets, no dropout, no optimiser)."""
    return InferenceGraph(**_build(spec, training=False))


def build_training_graph(spec: ModelSpec) -> TrainingGraph:
    """Build the training graph: the forecasting path, teacher forcing, losses and train op."""
    return TrainingGraph(**_build(spec, training=True))


def _build(spec: ModelSpec, training: bool) -> dict:
    # The order in which ops are created is part of the model: with a graph-level seed, each
    # initialiser's seed comes from the number of ops made before it. Keep it when editing.
    encoder_inputs = tf.compat.v1.placeholder(
        tf.float32, [None, None, spec.num_features], name="encoder_inputs"
    )
    batch, steps = tf.shape(encoder_inputs)[0], tf.shape(encoder_inputs)[1]
    encoder_lengths = tf.compat.v1.placeholder_with_default(
        tf.fill([batch], steps), [None], name="encoder_lengths"
    )
    if training:
        decoder_targets = tf.compat.v1.placeholder(
            tf.float32, [None, spec.horizon], name="decoder_targets"
        )
        dropout_rate = tf.compat.v1.placeholder_with_default(0.0, [], name="dropout_rate")
    encoder_initial_state = _initial_state_placeholders(batch, spec)
    weights = _make_weights(spec)
    head = None if spec.output == POINT else OutputHead(spec)
    embedding = ticker_embedding(spec)
    future = decoder_covariates(spec)
    # Without dropout (the default) no mask is drawn at all: identical numbers, less work.
    dropout = _stateless_dropout(dropout_rate) if training and spec.dropout > 0 else _identity

    # Encoder, layer by layer over the whole window (time-major inside).
    last_step = encoder_lengths - 1
    layer_input = with_ticker(tf.transpose(encoder_inputs, [1, 0, 2]), embedding)
    encoder_final = []
    run_sequence = SEQUENCE_IMPLEMENTATIONS[spec.encoder]
    for initial, layer_weights in zip(encoder_initial_state, weights.encoder, strict=True):
        sequence = run_sequence(layer_input, initial, layer_weights)
        encoder_final.append(state_at(sequence, last_step))
        layer_input = dropout(sequence.h)
    encoder_final_state = _named(tuple(encoder_final), "encoder_final")

    # The hand-off: each decoder layer starts from the matching encoder layer's final (c, h).
    decoder_initial_state = _named(encoder_final_state, "decoder_initial")

    rows = tf.range(batch)
    last_observed = tf.gather_nd(encoder_inputs[:, :, 0], tf.stack([rows, last_step], axis=1))

    tensors: dict = {}
    if training and head is not None:
        # A distributional output is trained free-running, on the path it forecasts with: step
        # k's distribution is of the return from the origin given the window alone, which a
        # decoder fed the true returns of steps 1..k-1 (teacher forcing) would not learn (it
        # would learn one bar's spread). Differentiable per-step cells, dropout on.
        _, _, free_running = _autoregressive_decode(
            last_observed,
            decoder_initial_state,
            weights,
            spec.horizon,
            head.reader(weights.raw, feedback=tf.stop_gradient),
            step=lstm_step,
            dropout=dropout,
            embedding=embedding,
            future=future,
        )
        teacher_forced = tf.identity(free_running, name="free_running")
    elif training:
        # Teacher forcing: the decoder reads the previous true value at every step. Those inputs
        # are all known up front, so each decoder layer runs over the horizon as one fused op
        # (whatever `model.encoder` says): measured faster to train and much faster to build
        # than a chain of per-step ops (README, Benchmark).
        previous_true = tf.concat([last_observed[:, None], decoder_targets[:, :-1]], axis=1)
        layer_input = with_ticker(
            with_future(tf.transpose(previous_true)[:, :, None], future), embedding
        )  # [H, B, 1 + C + E]
        for initial, layer_weights in zip(decoder_initial_state, weights.decoder, strict=True):
            layer_input = dropout(fused_sequence(layer_input, initial, layer_weights).h)
        teacher_forced = tf.transpose(weights.project(layer_input), name="teacher_forced")

    # Inference: the decoder reads its own previous prediction, starting from the last observed
    # (a distributional output's median path: `heads.OutputHead.reader`).
    forecast, decoder_final_state, forecast_raw = _autoregressive_decode(
        last_observed,
        decoder_initial_state,
        weights,
        spec.horizon,
        None if head is None else head.reader(weights.raw),
        embedding=embedding,
        future=future,
    )
    forecast = tf.identity(forecast, name="forecast")
    decoder_final_state = _named(decoder_final_state, "decoder_final")
    distribution = None
    if head is not None:
        distribution = tf.identity(head.distribution(forecast_raw), name="distribution")

    sampling: dict = dict(teacher_forcing=None, steps_per_epoch=None, sampled=None)
    # Scheduled sampling is for the point output (a distributional one trains free-running).
    if training and head is None and not spec.teacher_forcing.always:
        ratio, steps_per_epoch = teacher_forcing_ratio(spec.teacher_forcing, _step_counter())
        sampled = sampled_decode(
            last_observed,
            decoder_targets,
            decoder_initial_state,
            weights.decoder,
            weights.project,
            ratio,
            sampling_seed(_step_counter()),
            dropout,
            embedding,
            future,
        )
        sampling = dict(teacher_forcing=ratio, steps_per_epoch=steps_per_epoch, sampled=sampled)
    if training:
        if head is None:
            trained = teacher_forced if sampling["sampled"] is None else sampling["sampled"]
            loss = tf.reduce_mean(tf.square(trained - decoder_targets), name="loss")
            forecast_loss = tf.reduce_mean(
                tf.square(forecast - decoder_targets), name="forecast_loss"
            )
        else:
            loss = tf.identity(head.loss(teacher_forced, decoder_targets), name="loss")
            forecast_loss = tf.identity(
                head.loss(forecast_raw, decoder_targets), name="forecast_loss"
            )
        optimizer = tf.compat.v1.train.AdamOptimizer(spec.learning_rate)
        gradients, variables = zip(*optimizer.compute_gradients(loss), strict=True)
        clipped, _ = tf.clip_by_global_norm(gradients, spec.clip_norm)
        train_op = optimizer.apply_gradients(
            zip(clipped, variables, strict=True), _step_counter(), name="train_op"
        )
        tensors = dict(
            decoder_targets=decoder_targets,
            dropout_rate=dropout_rate,
            teacher_forced=teacher_forced,
            loss=loss,
            forecast_loss=forecast_loss,
            train_op=train_op,
            **sampling,
        )
    return dict(
        encoder_inputs=encoder_inputs,
        encoder_lengths=encoder_lengths,
        encoder_initial_state=encoder_initial_state,
        ticker_ids=None if embedding is None else embedding.ids,
        decoder_covariates=future,
        encoder_final_state=encoder_final_state,
        decoder_initial_state=decoder_initial_state,
        forecast=forecast,
        decoder_final_state=decoder_final_state,
        weights=weights,
        distribution=distribution,
        **tensors,
    )


def _identity(x: tf.Tensor) -> tf.Tensor:
    return x


def _step_counter() -> tf.Variable:
    """Train steps taken so far: a variable, so checkpoints hold it (see `_stateless_dropout`)."""
    return tf.compat.v1.train.get_or_create_global_step()


def _stateless_dropout(rate: tf.Tensor) -> Callable[[tf.Tensor], tf.Tensor]:
    """Dropout whose masks are a pure function of (graph seed, call site, train step).

    Stateful random ops keep a hidden position in their random stream that no checkpoint
    holds, so a resumed run would draw other masks than an uninterrupted one. Seeding each
    mask with the step counter, which checkpoints do hold, makes resuming exact.
    """
    step = _step_counter()
    base = tf.compat.v1.get_default_graph().seed or 0
    sites = count()

    def dropout(x: tf.Tensor) -> tf.Tensor:
        seed = tf.stack([tf.constant(base + next(sites), tf.int64), step])
        return tf.nn.experimental.stateless_dropout(x, rate=rate, seed=seed)

    return dropout


def build_step_graph(spec: ModelSpec, weights: Seq2SeqWeights) -> StepGraph:
    """Single-step ops over existing `weights` (built on demand, into the weights' graph)."""
    if spec.ticker_embedding or spec.num_future:
        raise NotImplementedError(
            "step-by-step running of a model with a ticker embedding or decoder covariates is "
            "not built; forecast with Seq2SeqModel.forecast"
        )
    encoder_input = tf.compat.v1.placeholder(
        tf.float32, [None, spec.num_features], name="step_encoder_input"
    )
    encoder_state = _state_placeholders("step_encoder_state", spec)
    decoder_input = tf.compat.v1.placeholder(tf.float32, [None], name="step_decoder_input")
    decoder_state = _state_placeholders("step_decoder_state", spec)
    decoder_next_state = _stack_step(decoder_input[:, None], decoder_state, weights.decoder)
    return StepGraph(
        encoder_input=encoder_input,
        encoder_state=encoder_state,
        encoder_next_state=_stack_step(encoder_input, encoder_state, weights.encoder),
        decoder_input=decoder_input,
        decoder_state=decoder_state,
        decoder_next_state=decoder_next_state,
        # a point's next value; a distributional output's raw numbers [B, P]
        decoder_prediction=(weights.project if spec.output == POINT else weights.raw)(
            decoder_next_state[-1].h
        ),
    )


def _make_weights(spec: ModelSpec) -> Seq2SeqWeights:
    units, outputs = spec.num_units, num_params(spec.output, spec.quantiles)
    encoder = tuple(
        make_lstm_weights(
            f"encoder/layer_{k}", input_size(spec, spec.num_features) if k == 0 else units, units
        )
        for k in range(spec.num_layers)
    )
    decoder = tuple(
        make_lstm_weights(
            f"decoder/layer_{k}", input_size(spec, 1 + spec.num_future) if k == 0 else units, units
        )
        for k in range(spec.num_layers)
    )
    with tf.compat.v1.variable_scope("projection"):
        kernel = tf.compat.v1.get_variable(
            "kernel", [units, outputs], initializer=tf.compat.v1.glorot_uniform_initializer()
        )
        if spec.output == POINT:
            bias_initializer = tf.compat.v1.zeros_initializer()
        else:
            bias = initial_bias(spec.output, spec.quantiles).astype("float32")
            bias_initializer = tf.compat.v1.constant_initializer(bias)
        bias = tf.compat.v1.get_variable("bias", [outputs], initializer=bias_initializer)
    return Seq2SeqWeights(encoder, decoder, kernel, bias)


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


def _state_placeholders(prefix: str, spec: ModelSpec) -> LayerStates:
    shape = [None, spec.num_units]
    return tuple(
        LSTMState(
            tf.compat.v1.placeholder(tf.float32, shape, name=f"{prefix}_c_{k}"),
            tf.compat.v1.placeholder(tf.float32, shape, name=f"{prefix}_h_{k}"),
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


def _stack_step(
    x: tf.Tensor,
    states: LayerStates,
    weights: tuple[LSTMWeights, ...],
    dropout: Callable[[tf.Tensor], tf.Tensor] = lambda h: h,
    step: Callable[[tf.Tensor, LSTMState, LSTMWeights], LSTMState] = lstm_step,
) -> LayerStates:
    """Advance every layer by one step; each layer reads the `h` of the layer below (through
    dropout in training)."""
    next_states = []
    for state, layer_weights in zip(states, weights, strict=True):
        next_state = step(x, state, layer_weights)
        next_states.append(next_state)
        x = dropout(next_state.h)
    return tuple(next_states)


def _autoregressive_decode(
    first_input: tf.Tensor,
    initial_state: LayerStates,
    weights: Seq2SeqWeights,
    horizon: int,
    read: Callable[[tf.Tensor, int], tuple[tf.Tensor, tf.Tensor]] | None = None,
    step: Callable[[tf.Tensor, LSTMState, LSTMWeights], LSTMState] = fused_step,
    dropout: Callable[[tf.Tensor], tf.Tensor] = _identity,
    embedding: TickerEmbedding | None = None,
    future: tf.Tensor | None = None,
) -> tuple[tf.Tensor, LayerStates, tf.Tensor | None]:
    """Unrolled decode: `horizon` is fixed per graph, so a Python loop builds a static chain.

    Each layer's step is one fused op (`fused_step`): nothing differentiates this path (training
    minimises the teacher-forced loss), and one op per step instead of about a dozen is what
    makes a one-window forecast fast; a path that is differentiated passes `step=lstm_step`
    (and its `dropout`). `read(h, k)` (a distributional head's) gives step k's
    next input and raw outputs, stacked into the third result [B, H, P]; without it the next
    input is the projected value and the third result is None.
    """
    state = initial_state
    prediction = first_input  # [B]
    predictions, raws = [], []
    for k in range(1, horizon + 1):
        decoder_input = with_ticker(with_future(prediction[:, None], future, k - 1), embedding)
        state = _stack_step(decoder_input, state, weights.decoder, dropout, step)
        if read is None:
            prediction = weights.project(state[-1].h)
        else:
            prediction, raw = read(state[-1].h, k)
            raws.append(raw)
        predictions.append(prediction)
    return tf.stack(predictions, axis=1), state, tf.stack(raws, axis=1) if raws else None

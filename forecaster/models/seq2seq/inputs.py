"""What the encoder and decoder read besides the values: the per-ticker embedding of a global
model, the decoder's known-future covariates (`model.covariates=[calendar]`), and (training
only) the scheduled-sampling decoder that mixes the true previous values with the model's own
predictions.

Kept apart from `graph.py`, which calls these helpers, so the graph's structure (encoder, the
explicit (c, h) hand-off, decoder, loss) reads the same with or without them. Creates no
Session and does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import tensorflow as tf

from forecaster.models.seq2seq.lstm import LSTMWeights, fused_sequence
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.models.seq2seq.state import LSTMState
from forecaster.training.teacher_forcing import TeacherForcing

UNKNOWN_TICKER = -1  # the id of a ticker the model was not trained on


class TickerEmbedding(NamedTuple):
    ids: tf.Tensor  # [B] int32 fed: each row's ticker, UNKNOWN_TICKER for a new one
    table: tf.Variable  # [num_tickers, E]
    vectors: tf.Tensor  # [B, E]: each row's ticker vector, the table's mean for a new ticker


def ticker_embedding(spec: ModelSpec) -> TickerEmbedding | None:
    """The embedding placeholder and table, or None when `spec` has none (no op is created, so a
    model without one is the same graph as before embeddings existed).

    A new ticker gets the mean of the trained vectors: an untrained "unknown" row would be its
    random initial value, while the mean is the centre of what the model learnt, the natural
    guess for a series it knows nothing about beyond its own prices."""
    if not spec.ticker_embedding:
        return None
    ids = tf.compat.v1.placeholder(tf.int32, [None], name="ticker_ids")
    with tf.compat.v1.variable_scope("ticker_embedding"):
        table = tf.compat.v1.get_variable(
            "table",
            [spec.num_tickers, spec.ticker_embedding],
            initializer=tf.compat.v1.random_normal_initializer(stddev=0.1),
        )
    known = tf.gather(table, tf.maximum(ids, 0))
    mean = tf.broadcast_to(tf.reduce_mean(table, axis=0), tf.shape(known))
    vectors = tf.where((ids >= 0)[:, None], known, mean, name="ticker_vectors")
    return TickerEmbedding(ids, table, vectors)


def input_size(spec: ModelSpec, values: int) -> int:
    """The first layer's input width: `values` features plus the ticker vector."""
    return values + spec.ticker_embedding


def decoder_covariates(spec: ModelSpec) -> tf.Tensor | None:
    """The [B, H, C] placeholder of the known-future covariates of every forecast step, or None
    when `spec` has none (no op is created: the graph is then the one without covariates)."""
    if not spec.num_future:
        return None
    return tf.compat.v1.placeholder(
        tf.float32, [None, spec.horizon, spec.num_future], name="decoder_covariates"
    )


def with_future(values: tf.Tensor, future: tf.Tensor | None, step: int | None = None) -> tf.Tensor:
    """Decoder `values` with the known-future covariates of their steps appended: over the
    whole horizon (`values` [H, B, F], `step` None) or at one step (`values` [B, F] or
    [1, B, F])."""
    if future is None:
        return values
    if step is None:
        return tf.concat([values, tf.transpose(future, [1, 0, 2])], axis=-1)
    at_step = future[:, step]
    if values.shape.rank == 3:
        at_step = at_step[None]
    return tf.concat([values, at_step], axis=-1)


def with_ticker(values: tf.Tensor, embedding: TickerEmbedding | None) -> tf.Tensor:
    """`values` [..., B, F] (time-major or one step) with each row's ticker vector appended."""
    if embedding is None:
        return values
    vectors = embedding.vectors
    if values.shape.rank == 3:  # [T, B, F]: the same vector at every step
        vectors = tf.broadcast_to(
            vectors[None], tf.concat([tf.shape(values)[:1], tf.shape(vectors)], axis=0)
        )
    return tf.concat([values, vectors], axis=-1)


def teacher_forcing_ratio(
    schedule: TeacherForcing, step: tf.Variable
) -> tuple[tf.Tensor, tf.Tensor]:
    """The schedule's ratio (`TeacherForcing.ratio_at`) at the epoch the step counter is in, as
    a placeholder with that default (tests feed 0.0 or 1.0). The epoch is the step counter over
    `steps_per_epoch` (fed by the network), so a resumed run continues the schedule exactly.
    Returns the ratio and the `steps_per_epoch` placeholder."""
    steps_per_epoch = tf.compat.v1.placeholder_with_default(
        tf.constant(1, tf.int64), [], name="steps_per_epoch"
    )
    epoch = tf.cast(step // steps_per_epoch, tf.float32)
    floor, k = schedule.ratio, schedule.epochs
    if schedule.decay == "constant":
        ratio = tf.constant(floor, tf.float32)
    elif schedule.decay == "linear":
        ratio = tf.maximum(floor, 1.0 - (1.0 - floor) * epoch / k)
    else:
        ratio = floor + (1.0 - floor) * (k + 1.0) / (k + tf.exp(epoch / k))
    ratio = tf.compat.v1.placeholder_with_default(ratio, [], name="teacher_forcing")
    return ratio, steps_per_epoch


def sampling_seed(step: tf.Variable) -> tf.Tensor:
    """[2] int64: the sampler's seed, from the graph seed (offset from the dropout masks' call
    sites, so no mask shares a stream with a draw) and the step counter."""
    base = (tf.compat.v1.get_default_graph().seed or 0) + 1_000_003
    return tf.stack([tf.constant(base, tf.int64), step])


def sampled_decode(
    last_observed: tf.Tensor,
    targets: tf.Tensor,
    initial_state: tuple[LSTMState, ...],
    decoder: tuple[LSTMWeights, ...],
    project: Callable[[tf.Tensor], tf.Tensor],
    ratio: tf.Tensor,
    seed: tf.Tensor,
    dropout: Callable[[tf.Tensor], tf.Tensor],
    embedding: TickerEmbedding | None,
    future: tf.Tensor | None = None,
) -> tf.Tensor:
    """Scheduled sampling: [B, H] outputs of a decoder whose step k > 0 reads, per row, the true
    value k-1 with probability `ratio`, else its own prediction k-1 (not differentiated through,
    as in Bengio et al.). The draws are stateless uniforms seeded by `seed` (graph seed and the
    step counter), so a run is reproducible for a seed and resumes exactly.

    Each layer's step is the fused sequence kernel over one step: the very op of the
    teacher-forced path, with its gradient, so ratio 1.0 gives the teacher-forced outputs and 0.0
    the autoregressive forecast, bit for bit."""
    horizon = targets.shape[1]
    batch = tf.shape(targets)[0]
    previous, state, outputs = last_observed, initial_state, []
    for k in range(horizon):
        if k > 0:
            draw = tf.random.stateless_uniform([batch], seed=seed + [k, 0])
            true = draw < ratio
            previous = tf.where(true, targets[:, k - 1], tf.stop_gradient(outputs[-1]))
        # [1, B, 1 + C + E]
        layer_input = with_ticker(with_future(previous[None, :, None], future, k), embedding)
        next_state = []
        for layer_state, weights in zip(state, decoder, strict=True):
            out = fused_sequence(layer_input, layer_state, weights)
            next_state.append(LSTMState(out.c[0], out.h[0]))
            layer_input = dropout(out.h)
        state = tuple(next_state)
        outputs.append(project(layer_input[0]))
    return tf.stack(outputs, axis=1)

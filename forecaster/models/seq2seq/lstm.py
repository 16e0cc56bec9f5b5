"""The LSTM cell, owned here rather than borrowed from Keras.

Keras 3 removed `tf.compat.v1.nn.rnn_cell.LSTMCell`; its math is a few lines, so we keep it.
Semantics are TF1 `LSTMCell`'s (no peepholes, no projection):

    [i, j, f, o] = [x, h] @ kernel + bias          (one matmul, gates in this order)
    c' = sigmoid(f + FORGET_BIAS) * c + sigmoid(i) * tanh(j)
    h' = sigmoid(o) * tanh(c')

The state is `(c, h)`, in that order, everywhere in forecaster: graph, artifacts and API.
(TF1's `state_is_tuple=False` concatenation is `[c, h]` too; writing it `[h, c]` is a common
mistake that swaps the two.)

The same kernel layout drives TensorFlow's fused `BlockLSTM` and `LSTMBlockCell` ops (they call
`j` "ci"), so one set of variables serves every way of running a layer:

- `fused_sequence`: the fused C++ kernel, one op for the whole sequence, forward and backward
  (the default encoder, and the teacher-forced decoder: fastest of everything measured, see
  `benchmarks/bench.py` and the README);
- `while_loop_sequence`: an explicit `tf.while_loop` over time writing to a `TensorArray`, the
  state handed from step to step in plain sight;
- `lstm_step`: a single step in plain ops, the reference the others are tested against;
- `fused_step`: a single step as one fused op, for paths nothing differentiates (the
  autoregressive decoder).

Nothing here creates a Session or does I/O.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from forecaster.models.seq2seq.state import LSTMState

FORGET_BIAS = 1.0


class LSTMWeights(NamedTuple):
    kernel: tf.Variable  # [input_size + num_units, 4 * num_units], gate blocks i, j, f, o
    bias: tf.Variable  # [4 * num_units]

    @property
    def num_units(self) -> int:
        return int(self.bias.shape[0]) // 4


def make_lstm_weights(name: str, input_size: int, num_units: int) -> LSTMWeights:
    """Create one layer's variables: Glorot-uniform kernel, zero bias (TF1 LSTMCell defaults)."""
    with tf.compat.v1.variable_scope(name):
        kernel = tf.compat.v1.get_variable(
            "kernel",
            [input_size + num_units, 4 * num_units],
            initializer=tf.compat.v1.glorot_uniform_initializer(),
        )
        bias = tf.compat.v1.get_variable(
            "bias", [4 * num_units], initializer=tf.compat.v1.zeros_initializer()
        )
    return LSTMWeights(kernel, bias)


def lstm_step(x: tf.Tensor, state: LSTMState, weights: LSTMWeights) -> LSTMState:
    """Advance one layer by one timestep. `x`: [batch, input_size]. Returns the new `(c, h)`."""
    gates = tf.matmul(tf.concat([x, state.h], axis=1), weights.kernel) + weights.bias
    i, j, f, o = tf.split(gates, 4, axis=1)
    c = tf.sigmoid(f + FORGET_BIAS) * state.c + tf.sigmoid(i) * tf.tanh(j)
    h = tf.sigmoid(o) * tf.tanh(c)
    return LSTMState(c, h)


def _block_kernel_args(weights: LSTMWeights, dtype: tf.DType) -> dict:
    """What TensorFlow's fused LSTM kernels take besides the inputs and state: our weights, no
    peepholes, the forget bias, and no clipping of c."""
    no_peephole = tf.zeros([weights.num_units], dtype=dtype)
    return dict(
        w=weights.kernel,
        wci=no_peephole,
        wcf=no_peephole,
        wco=no_peephole,
        b=weights.bias,
        forget_bias=FORGET_BIAS,
        cell_clip=-1.0,  # the ops clip c to +-3 by default; TF1 LSTMCell does not clip
        use_peephole=False,
    )


def fused_step(x: tf.Tensor, state: LSTMState, weights: LSTMWeights) -> LSTMState:
    """`lstm_step` as one fused op (TensorFlow's `LSTMBlockCell`), for paths that are never
    differentiated (the op has no gradient): autoregressive decoding and step-by-step serving.
    """
    out = tf.raw_ops.LSTMBlockCell(
        x=x, cs_prev=state.c, h_prev=state.h, **_block_kernel_args(weights, x.dtype)
    )
    return LSTMState(out.cs, out.h)


def fused_sequence(inputs: tf.Tensor, initial_state: LSTMState, weights: LSTMWeights) -> LSTMState:
    """Run one layer over time-major `inputs` [time, batch, input_size] with the fused kernel.

    Returns the `(c, h)` of every step, each [time, batch, num_units].
    """
    out = tf.raw_ops.BlockLSTM(
        seq_len_max=tf.cast(tf.shape(inputs)[0], tf.int64),
        x=inputs,
        cs_prev=initial_state.c,
        h_prev=initial_state.h,
        **_block_kernel_args(weights, inputs.dtype),
    )
    return LSTMState(out.cs, out.h)


def while_loop_sequence(
    inputs: tf.Tensor, initial_state: LSTMState, weights: LSTMWeights
) -> LSTMState:
    """`fused_sequence`'s twin as an explicit `tf.while_loop` over time with `TensorArray`s.

    Same inputs and outputs (to 1e-5); gradients flow through the loop. The state is handed from
    step to step in plain sight: `(c, h)` in, `(c, h)` out.
    """
    num_steps = tf.shape(inputs)[0]
    steps = tf.TensorArray(inputs.dtype, size=num_steps).unstack(inputs)
    c_seq = tf.TensorArray(inputs.dtype, size=num_steps)
    h_seq = tf.TensorArray(inputs.dtype, size=num_steps)

    def body(t, c, h, c_seq, h_seq):
        state = lstm_step(steps.read(t), LSTMState(c, h), weights)
        return t + 1, state.c, state.h, c_seq.write(t, state.c), h_seq.write(t, state.h)

    _, _, _, c_seq, h_seq = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (tf.constant(0), initial_state.c, initial_state.h, c_seq, h_seq),
    )
    return LSTMState(c_seq.stack(), h_seq.stack())


# One per `model.encoder` value (spec.ENCODERS).
SEQUENCE_IMPLEMENTATIONS = {"fused": fused_sequence, "while_loop": while_loop_sequence}


def state_at(sequence: LSTMState, last_step: tf.Tensor) -> LSTMState:
    """Pick each row's state at its own last valid step. `last_step`: [batch] int32.

    Padding comes after a row's last valid step, so the state there is untouched by padding.
    """
    rows = tf.range(tf.shape(last_step)[0])
    index = tf.stack([last_step, rows], axis=1)
    return LSTMState(tf.gather_nd(sequence.c, index), tf.gather_nd(sequence.h, index))

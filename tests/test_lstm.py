"""The owned LSTM cell against independent references: numpy written here, and Keras 3's LSTM."""

import numpy as np
import pytest
import tensorflow as tf

from forecaster.models.seq2seq.lstm import (
    FORGET_BIAS,
    SEQUENCE_IMPLEMENTATIONS,
    fused_sequence,
    fused_step,
    lstm_step,
    make_lstm_weights,
    state_at,
    while_loop_sequence,
)
from forecaster.models.seq2seq.spec import ENCODERS
from forecaster.models.seq2seq.state import LSTMState

TOL = 1e-5


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(inputs, c, h, kernel, bias):
    """Reference TF1 LSTMCell: gates i, j, f, o from one matmul; forget bias 1.0; state (c, h).

    inputs: [time, batch, features]. Returns per-step c and h, each [time, batch, units].
    """
    cs, hs = [], []
    for x in inputs:
        i, j, f, o = np.split(np.concatenate([x, h], axis=1) @ kernel + bias, 4, axis=1)
        c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(j)
        h = sigmoid(o) * np.tanh(c)
        cs.append(c)
        hs.append(h)
    return np.stack(cs), np.stack(hs)


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    time_steps, batch, features, units = 6, 4, 3, 5
    return dict(
        inputs=rng.normal(size=(time_steps, batch, features)).astype(np.float32),
        c0=rng.normal(size=(batch, units)).astype(np.float32),
        h0=rng.normal(size=(batch, units)).astype(np.float32),
        kernel=rng.normal(scale=0.5, size=(features + units, 4 * units)).astype(np.float32),
        bias=rng.normal(scale=0.5, size=(4 * units,)).astype(np.float32),
    )


def run_sequence(sequence_fn, case):
    """Run a sequence implementation in a fresh graph with the case's weights loaded."""
    graph = tf.Graph()
    with graph.as_default():
        features = case["inputs"].shape[2]
        weights = make_lstm_weights("layer", features, case["c0"].shape[1])
        out = sequence_fn(tf.constant(case["inputs"]), LSTMState(case["c0"], case["h0"]), weights)
        with tf.compat.v1.Session() as session:
            weights.kernel.load(case["kernel"], session)
            weights.bias.load(case["bias"], session)
            return session.run(out)


def step_by_step(inputs, initial_state, weights, step=lstm_step):
    """A Python loop over `lstm_step`: the third way to run a layer."""
    state, cs, hs = initial_state, [], []
    for t in range(inputs.shape[0]):
        state = step(inputs[t], state, weights)
        cs.append(state.c)
        hs.append(state.h)
    return LSTMState(tf.stack(cs), tf.stack(hs))


def fused_step_by_step(inputs, initial_state, weights):
    """A Python loop over `fused_step`, the one-op step the autoregressive decoder runs."""
    return step_by_step(inputs, initial_state, weights, step=fused_step)


ALL_WAYS = [step_by_step, fused_step_by_step, fused_sequence, while_loop_sequence]


def test_every_encoder_name_has_an_implementation():
    assert tuple(SEQUENCE_IMPLEMENTATIONS) == ENCODERS


@pytest.mark.parametrize("sequence_fn", ALL_WAYS, ids=lambda f: f.__name__)
def test_forget_gate_gets_tf1s_bias_of_one(sequence_fn):
    """With every weight zero, every gate's pre-activation is 0, so one step keeps
    sigmoid(0 + FORGET_BIAS) of the cell state: sigmoid(1) = 0.731 with TF1's bias, 0.5 without."""
    zeros = dict(
        inputs=np.zeros((1, 1, 2), np.float32),
        c0=np.ones((1, 3), np.float32),
        h0=np.zeros((1, 3), np.float32),
        kernel=np.zeros((5, 12), np.float32),
        bias=np.zeros(12, np.float32),
    )
    got = run_sequence(sequence_fn, zeros)
    np.testing.assert_allclose(got.c[0], sigmoid(FORGET_BIAS), atol=TOL)
    np.testing.assert_allclose(got.c[0], 0.7310586, atol=TOL)


@pytest.mark.parametrize("sequence_fn", ALL_WAYS, ids=lambda f: f.__name__)
def test_cell_state_is_never_clipped(sequence_fn):
    """Input, candidate and forget gates held wide open add about 1 to c every step. TF1's
    LSTMCell does not clip c; BlockLSTM clips it to +-3 unless told not to."""
    units, features, steps = 2, 1, 6
    bias = np.zeros(4 * units, np.float32)
    bias[: 3 * units] = 10.0  # i, j, f saturated; o left at 0
    case = dict(
        inputs=np.zeros((steps, 1, features), np.float32),
        c0=np.zeros((1, units), np.float32),
        h0=np.zeros((1, units), np.float32),
        kernel=np.zeros((features + units, 4 * units), np.float32),
        bias=bias,
    )
    got = run_sequence(sequence_fn, case)
    expected_c, expected_h = numpy_lstm(
        case["inputs"], case["c0"], case["h0"], case["kernel"], case["bias"]
    )
    assert got.c.max() > 5.0
    np.testing.assert_allclose(got.c, expected_c, atol=1e-4)
    np.testing.assert_allclose(got.h, expected_h, atol=TOL)


@pytest.mark.parametrize("sequence_fn", ALL_WAYS, ids=lambda f: f.__name__)
def test_cell_matches_numpy_reference(case, sequence_fn):
    expected_c, expected_h = numpy_lstm(
        case["inputs"], case["c0"], case["h0"], case["kernel"], case["bias"]
    )
    got = run_sequence(sequence_fn, case)
    np.testing.assert_allclose(got.c, expected_c, atol=TOL)
    np.testing.assert_allclose(got.h, expected_h, atol=TOL)


def test_state_order_is_c_then_h(case):
    # c is unbounded while h = o * tanh(c) stays in (-1, 1). Large inputs drive |c| above 1, so a
    # swap of c and h anywhere in the pipeline would put values > 1 in the h slot.
    case = dict(case, inputs=case["inputs"] * 20)
    got = run_sequence(fused_sequence, case)
    expected_c, expected_h = numpy_lstm(
        case["inputs"], case["c0"], case["h0"], case["kernel"], case["bias"]
    )
    assert np.abs(got.c).max() > 1.0
    assert np.abs(got.h).max() < 1.0
    np.testing.assert_allclose(got.c, expected_c, atol=1e-4)
    np.testing.assert_allclose(got.h, expected_h, atol=1e-5)
    assert not np.allclose(got.c, expected_h)


def test_initial_c_and_h_enter_the_cell_differently(case):
    """Feeding a state as (c, h) vs (h, c) gives different results; only (c, h) matches numpy."""
    swapped = dict(case, c0=case["h0"], h0=case["c0"])
    expected_c, _ = numpy_lstm(case["inputs"], case["c0"], case["h0"], case["kernel"], case["bias"])
    np.testing.assert_allclose(run_sequence(fused_sequence, case).c, expected_c, atol=TOL)
    assert not np.allclose(run_sequence(fused_sequence, swapped).c, expected_c, atol=1e-3)


def test_cell_matches_keras_lstm_with_copied_weights(case):
    """Keras 3 LSTM: gates i, f, c, o; separate input and recurrent kernels; no forget bias."""
    keras = pytest.importorskip("keras")
    units = case["c0"].shape[1]
    features = case["inputs"].shape[2]
    i, j, f, o = np.split(case["kernel"], 4, axis=1)
    bi, bj, bf, bo = np.split(case["bias"], 4)
    keras_kernel = np.concatenate([i, f, j, o], axis=1)  # i, f, c(=j), o
    layer = keras.layers.LSTM(units, return_sequences=True, return_state=True)
    batch_major = np.transpose(case["inputs"], (1, 0, 2))
    layer.build((None, None, features))
    layer.set_weights(
        [
            keras_kernel[:features],
            keras_kernel[features:],
            np.concatenate([bi, bf + FORGET_BIAS, bj, bo]),  # our forget bias is added in the math
        ]
    )
    # Keras orders its state [h, c]; ours is (c, h).
    sequence, final_h, final_c = layer(batch_major, initial_state=[case["h0"], case["c0"]])
    got = run_sequence(fused_sequence, case)
    np.testing.assert_allclose(got.h, np.transpose(np.asarray(sequence), (1, 0, 2)), atol=TOL)
    np.testing.assert_allclose(got.c[-1], np.asarray(final_c), atol=TOL)
    np.testing.assert_allclose(got.h[-1], np.asarray(final_h), atol=TOL)


@pytest.mark.parametrize("sequence_fn", [fused_sequence, while_loop_sequence])
def test_gradients_flow_through_every_implementation(case, sequence_fn):
    graph = tf.Graph()
    with graph.as_default():
        weights = make_lstm_weights("layer", case["inputs"].shape[2], case["c0"].shape[1])
        out = sequence_fn(tf.constant(case["inputs"]), LSTMState(case["c0"], case["h0"]), weights)
        grads = tf.gradients(tf.reduce_sum(out.h[-1]) + tf.reduce_sum(out.c[-1]), list(weights))
        with tf.compat.v1.Session() as session:
            weights.kernel.load(case["kernel"], session)
            weights.bias.load(case["bias"], session)
            kernel_grad, bias_grad = session.run(grads)
    assert np.abs(kernel_grad).sum() > 0 and np.abs(bias_grad).sum() > 0


def test_fused_and_while_loop_gradients_agree(case):
    def grads_of(sequence_fn):
        graph = tf.Graph()
        with graph.as_default():
            weights = make_lstm_weights("layer", case["inputs"].shape[2], case["c0"].shape[1])
            out = sequence_fn(
                tf.constant(case["inputs"]), LSTMState(case["c0"], case["h0"]), weights
            )
            grads = tf.gradients(tf.reduce_sum(out.h**2), list(weights))
            with tf.compat.v1.Session() as session:
                weights.kernel.load(case["kernel"], session)
                weights.bias.load(case["bias"], session)
                return session.run(grads)

    for fused, looped in zip(grads_of(fused_sequence), grads_of(while_loop_sequence), strict=True):
        np.testing.assert_allclose(fused, looped, atol=1e-4)


def test_state_at_picks_each_rows_last_valid_step(case):
    got = run_sequence(fused_sequence, case)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        picked = session.run(state_at(LSTMState(got.c, got.h), tf.constant([0, 5, 2, 3])))
    for row, step in enumerate([0, 5, 2, 3]):
        np.testing.assert_array_equal(picked.c[row], got.c[step, row])
        np.testing.assert_array_equal(picked.h[row], got.h[step, row])

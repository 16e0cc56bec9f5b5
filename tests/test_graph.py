"""The seq2seq graph: state hand-off, feeding states, teacher forcing vs autoregression, the
inference-only export, and the whole forward pass against a numpy reference."""

import numpy as np
import pytest
import tensorflow as tf
from test_lstm import numpy_lstm

from forecaster.models.seq2seq.export import SERVING_TAG, SIGNATURE_KEY, Preprocessing, export_model
from forecaster.models.seq2seq.network import Seq2SeqModel
from forecaster.models.seq2seq.spec import ModelSpec
from forecaster.models.seq2seq.state import LSTMState


@pytest.fixture
def spec():
    return ModelSpec(horizon=4, num_features=2, num_units=5, num_layers=2)


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    return (
        rng.normal(size=(6, 7, 2)).astype(np.float32),
        rng.normal(size=(6, 4)).astype(np.float32),
    )


def test_decoder_initial_state_is_the_encoders_final_state_bit_for_bit(spec, batch):
    inputs, _ = batch
    with Seq2SeqModel(spec) as model:
        t = model.tensors
        encoder_final, decoder_initial = model.session.run(
            [t.encoder_final_state, t.decoder_initial_state], {t.encoder_inputs: inputs}
        )
    assert len(encoder_final) == len(decoder_initial) == spec.num_layers
    for enc, dec in zip(encoder_final, decoder_initial, strict=True):
        np.testing.assert_array_equal(enc.c, dec.c)
        np.testing.assert_array_equal(enc.h, dec.h)
        assert not np.array_equal(enc.c, enc.h)


def test_forecast_feeds_back_its_own_predictions(spec, batch):
    """Teacher forcing with the model's own forecast as the 'truth' reproduces the forecast."""
    inputs, _ = batch
    with Seq2SeqModel(spec) as model:
        forecast = model.forecast(inputs).forecast
        t = model.tensors
        teacher_forced = model.session.run(
            t.teacher_forced, {t.encoder_inputs: inputs, t.decoder_targets: forecast}
        )
    np.testing.assert_allclose(teacher_forced, forecast, atol=1e-5)


def test_forecast_does_not_read_the_targets(spec, batch):
    inputs, targets = batch
    with Seq2SeqModel(spec) as model:
        t = model.tensors
        with_targets = model.session.run(
            t.forecast, {t.encoder_inputs: inputs, t.decoder_targets: targets}
        )
        with_other = model.session.run(
            t.forecast, {t.encoder_inputs: inputs, t.decoder_targets: targets * 100}
        )
    np.testing.assert_array_equal(with_targets, with_other)


def test_omitted_initial_state_is_zeros_and_fed_state_is_used(spec, batch):
    inputs, _ = batch
    zeros = np.zeros((len(inputs), spec.num_units), np.float32)
    rng = np.random.default_rng(0)
    fed = tuple(LSTMState(rng.normal(size=zeros.shape).astype(np.float32), None) for _ in range(2))
    with Seq2SeqModel(spec) as model:
        default = model.forecast(inputs)
        explicit_zeros = model.forecast(inputs, initial_state=(LSTMState(zeros, zeros),) * 2)
        with_c_only = model.forecast(inputs, initial_state=fed)
        layer_1_only = model.forecast(inputs, initial_state=(None, fed[1]))
    np.testing.assert_array_equal(default.forecast, explicit_zeros.forecast)
    assert not np.allclose(default.forecast, with_c_only.forecast)
    assert not np.allclose(default.encoder_final_state[1].c, layer_1_only.encoder_final_state[1].c)
    # Layer 0 never sees layer 1's initial state.
    np.testing.assert_array_equal(
        default.encoder_final_state[0].c, layer_1_only.encoder_final_state[0].c
    )


def test_initial_state_with_wrong_shape_names_the_expected_shape(spec, batch):
    inputs, _ = batch
    bad = (LSTMState(np.zeros((2, 3), np.float32), None), None)
    with Seq2SeqModel(spec) as model, pytest.raises(ValueError, match=r"expected \(6, 5\)"):
        model.forecast(inputs, initial_state=bad)


def test_padding_after_a_rows_length_changes_neither_state_nor_forecast(spec, batch):
    inputs, targets = batch
    lengths = np.array([7, 3, 5, 1, 7, 2], np.int32)
    noisy = inputs.copy()
    for row, length in enumerate(lengths):
        noisy[row, length:] = 1e3  # garbage where a row has no data
    with Seq2SeqModel(spec) as model:
        clean = model.forecast(inputs, lengths=lengths)
        padded = model.forecast(noisy, lengths=lengths)
        short = model.forecast(inputs[1:2, :3])  # row 1 alone, cut to its length
        t = model.tensors
        losses = [
            model.session.run(
                t.loss,
                {t.encoder_inputs: x, t.encoder_lengths: lengths, t.decoder_targets: targets},
            )
            for x in (inputs, noisy)
        ]
    np.testing.assert_array_equal(clean.forecast, padded.forecast)
    assert losses[0] == losses[1]
    np.testing.assert_allclose(clean.forecast[1], short.forecast[0], atol=1e-6)
    np.testing.assert_allclose(
        clean.encoder_final_state[1].c[1], short.encoder_final_state[1].c[0], atol=1e-6
    )


def test_two_models_in_one_process_do_not_collide(spec, batch):
    inputs, targets = batch
    losses = []
    for _ in range(2):
        with Seq2SeqModel(spec, seed=11) as model:
            losses.append([model.train_step(inputs, targets) for _ in range(3)])
    assert losses[0] == losses[1]


def test_training_reduces_the_loss_on_a_learnable_series():
    spec = ModelSpec(horizon=5, num_units=16, learning_rate=1e-2)
    t = np.arange(400)
    series = np.sin(t * 0.3).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(series, 25)
    inputs, targets = windows[:, :20, None], windows[:, 20:]
    with Seq2SeqModel(spec) as model:
        before = model.validation_loss(inputs, targets)
        for _ in range(150):
            model.train_step(inputs[:128], targets[:128])
        after = model.validation_loss(inputs, targets)
    assert after < 0.1 * before


@pytest.mark.parametrize(
    "field, value, key",
    [
        ("num_units", 0, "model.num_units"),
        ("dropout", 1.0, "model.dropout"),
        ("encoder", "cudnn", "model.encoder"),
        ("learning_rate", -1.0, "train.learning_rate"),
    ],
)
def test_invalid_spec_names_the_config_key(field, value, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        ModelSpec(horizon=3, **{field: value})


def test_set_weights_restores_a_snapshot(spec, batch):
    inputs, targets = batch
    with Seq2SeqModel(spec) as model:
        snapshot = model.get_weights()
        before = model.forecast(inputs).forecast
        for _ in range(5):
            model.train_step(inputs, targets)
        assert not np.array_equal(model.forecast(inputs).forecast, before)
        model.set_weights(snapshot)
        np.testing.assert_array_equal(model.forecast(inputs).forecast, before)


# -- the whole forward pass, against numpy -----------------------------------------------------


def numpy_seq2seq(weights: dict, inputs: np.ndarray, horizon: int, targets=None):
    """Reference forward pass: the encoder's final (c, h) of every layer starts the decoder,
    whose first input is the last observed target (inputs[:, -1, 0]); each later step reads the
    previous prediction, or with `targets` the previous true value (teacher forcing)."""
    num_layers = sum(name.startswith("encoder/") and name.endswith("/kernel") for name in weights)
    batch, units = len(inputs), weights["projection/kernel"].shape[0]
    zeros = np.zeros((batch, units), np.float32)
    layer_input, states = np.transpose(inputs, (1, 0, 2)), []
    for k in range(num_layers):
        cs, hs = numpy_lstm(
            layer_input, zeros, zeros, weights[f"encoder/layer_{k}/kernel"],
            weights[f"encoder/layer_{k}/bias"],
        )  # fmt: skip
        states.append((cs[-1], hs[-1]))
        layer_input = hs
    encoder_final = list(states)
    previous, predictions = inputs[:, -1, 0], []
    for step in range(horizon):
        x = previous[:, None]
        for k in range(num_layers):
            cs, hs = numpy_lstm(
                x[None], *states[k], weights[f"decoder/layer_{k}/kernel"],
                weights[f"decoder/layer_{k}/bias"],
            )  # fmt: skip
            states[k] = (cs[0], hs[0])
            x = hs[0]
        prediction = (x @ weights["projection/kernel"] + weights["projection/bias"])[:, 0]
        predictions.append(prediction)
        previous = prediction if targets is None else targets[:, step]
    return np.stack(predictions, axis=1), encoder_final


@pytest.mark.parametrize("encoder", ["fused", "while_loop"])
def test_forecast_and_teacher_forcing_match_a_numpy_seq2seq(spec, batch, encoder):
    inputs, targets = batch
    with Seq2SeqModel(ModelSpec(**{**spec.__dict__, "encoder": encoder}), seed=4) as model:
        for _ in range(3):  # move the weights off their initial values (biases are zero there)
            model.train_step(inputs, targets)
        weights = model.get_weights()
        got = model.forecast(inputs)
        t = model.tensors
        teacher_forced = model.session.run(
            t.teacher_forced, {t.encoder_inputs: inputs, t.decoder_targets: targets}
        )
    expected, encoder_final = numpy_seq2seq(weights, inputs, spec.horizon)
    np.testing.assert_allclose(got.forecast, expected, atol=1e-5)
    for (c, h), state in zip(encoder_final, got.encoder_final_state, strict=True):
        np.testing.assert_allclose(state.c, c, atol=1e-5)
        np.testing.assert_allclose(state.h, h, atol=1e-5)
    expected_teacher_forced, _ = numpy_seq2seq(weights, inputs, spec.horizon, targets)
    np.testing.assert_allclose(teacher_forced, expected_teacher_forced, atol=1e-5)


# -- export: the inference graph only ------------------------------------------------------------


def run_saved_model(path, inputs: np.ndarray) -> tuple[np.ndarray, tf.compat.v1.MetaGraphDef]:
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.load(session, [SERVING_TAG], str(path))
        signature = meta.signature_def[SIGNATURE_KEY]
        forecast = session.run(
            signature.outputs["forecast"].name, {signature.inputs["encoder_inputs"].name: inputs}
        )
        return forecast, meta


def preprocessing_for(spec: ModelSpec) -> Preprocessing:
    return Preprocessing(
        target="log_return", scaler_mean=0.0, scaler_std=1.0, lookback=7, horizon=spec.horizon,
        num_layers=spec.num_layers, num_units=spec.num_units, price_column="Close",
        date_column="Date",
    )  # fmt: skip


def test_dropout_is_off_at_inference_and_in_the_export(batch, tmp_path):
    """A model trained with dropout forecasts the same twice, and the same as its export."""
    inputs, targets = batch
    spec = ModelSpec(horizon=4, num_features=2, num_units=5, num_layers=2, dropout=0.5)
    with Seq2SeqModel(spec, seed=2) as model:
        for _ in range(3):
            model.train_step(inputs, targets)
        first, second = model.forecast(inputs).forecast, model.forecast(inputs).forecast
        val_losses = [model.validation_loss(inputs, targets) for _ in range(2)]
        path = export_model(spec, model.get_weights(), preprocessing_for(spec), tmp_path)
    np.testing.assert_array_equal(first, second)
    assert val_losses[0] == val_losses[1]
    exported, _ = run_saved_model(path / "saved_model", inputs)
    np.testing.assert_allclose(exported, first, atol=1e-6)


def test_the_export_holds_the_inference_graph_only(spec, batch, tmp_path):
    inputs, targets = batch
    with Seq2SeqModel(spec) as model:
        model.train_step(inputs, targets)
        path = export_model(spec, model.get_weights(), preprocessing_for(spec), tmp_path)
    _, meta = run_saved_model(path / "saved_model", inputs)
    ops = {node.name for node in meta.graph_def.node}
    variables = {node.name for node in meta.graph_def.node if node.op == "VarHandleOp"} or {
        node.name for node in meta.graph_def.node if node.op in ("VariableV2", "Variable")
    }
    assert variables  # the weights are there...
    assert not any("Adam" in name for name in ops)  # ...but no optimiser slots,
    assert not any("train_op" in name or "gradients" in name for name in ops)  # no train op,
    assert not any(name.startswith("decoder_targets") for name in ops)  # no targets,
    assert not any("dropout" in name for name in ops)  # and no dropout
    assert len(variables) == 2 * 2 * spec.num_layers + 2  # kernel, bias per LSTM; projection

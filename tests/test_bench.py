"""The benchmark on tiny models: it measures every implementation, compares like with like, and
reports ratios against the fastest peer of the same run.

No speed thresholds: how fast things are is what the benchmark reports, not what tests assert.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
import torch

from benchmarks.bench import (
    WORKLOADS,
    KerasRunner,
    MachineFacts,
    Measurement,
    OursRunner,
    Settings,
    Timing,
    TorchRunner,
    against_fastest_peer,
    configure_threads,
    format_report,
    main,
    peers,
    quick,
    run_benchmark,
)
from forecaster.models.seq2seq.lstm import SEQUENCE_IMPLEMENTATIONS

PEERS = ["keras/step", "keras/step+xla", "keras/unroll", "torch/1t", "torch/2t"]


def current_threads() -> tuple[int, int]:
    """The eager context's thread counts: other tests may already have fixed them."""
    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def tiny_settings() -> Settings:
    intra, inter = current_threads()
    return Settings(rounds=2, steps=2, infer_calls=2, warmup=1, intra_op=intra, inter_op=inter)


def tiny_inputs(workload, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((batch, workload.lookback, workload.num_features), dtype=np.float32),
        rng.standard_normal((batch, workload.horizon), dtype=np.float32),
    )


# One and two layers: `quick` shrinks every other dimension alike, so tiny `default` is tiny W1.
MEASURED = ["W1", "W2"]


@pytest.fixture(scope="module")
def run():
    settings = tiny_settings()
    before = MachineFacts.collect()
    measurements = run_benchmark([quick(WORKLOADS[name]) for name in MEASURED], settings)
    return measurements, format_report(measurements, settings, before, MachineFacts.collect())


def test_every_workload_measures_each_encoder_of_ours_and_every_peer(run):
    measurements, _ = run
    expected = [f"ours/{name}" for name in SEQUENCE_IMPLEMENTATIONS] + PEERS
    assert list(peers(WORKLOADS["W1"], tiny_settings())) == PEERS
    for name in MEASURED:
        rows = [m.implementation for m in measurements if m.workload.name == name]
        assert rows == expected


def test_every_figure_is_positive_and_finite(run):
    measurements, _ = run
    for m in measurements:
        for timing in (m.train_windows_per_s, m.infer_ms_one, m.infer_ms_batch, m.startup_s):
            assert timing.samples
            assert all(math.isfinite(x) and x > 0 for x in timing.samples)
            assert math.isfinite(timing.median) and timing.median > 0


def test_report_compares_each_of_ours_with_the_fastest_peer(run):
    _, report = run
    for name in SEQUENCE_IMPLEMENTATIONS:
        assert report.count(f"ours/{name} vs fastest peer: train ") == len(MEASURED)


def measured(name: str, train: float, one: float, batch: float, startup: float) -> Measurement:
    return Measurement(
        WORKLOADS["W1"],
        name,
        Timing((train, train)),
        Timing((one, one)),
        Timing((batch, batch)),
        Timing((startup,)),
    )


def test_ratios_are_against_the_fastest_peer_figure_by_figure():
    """Each figure has its own fastest peer; every ratio reads 'times as fast as it'."""
    ours = measured("ours/fused", train=3000.0, one=0.5, batch=20.0, startup=2.0)
    keras_xla = measured("keras/step+xla", train=1500.0, one=1.0, batch=10.0, startup=8.0)
    torch_1t = measured("torch/1t", train=2000.0, one=2.0, batch=40.0, startup=0.5)
    comparisons = {c.figure: c for c in against_fastest_peer(ours, [keras_xla, torch_1t])}
    assert (comparisons["train"].peer, comparisons["train"].ratio) == ("torch/1t", 1.5)
    assert (comparisons["infer_one"].peer, comparisons["infer_one"].ratio) == (
        "keras/step+xla",
        2.0,
    )
    assert (comparisons["infer_batch"].peer, comparisons["infer_batch"].ratio) == (
        "keras/step+xla",
        0.5,
    )
    assert (comparisons["startup"].peer, comparisons["startup"].ratio) == ("torch/1t", 0.25)

    facts = MachineFacts.collect()
    report = format_report([ours, keras_xla, torch_1t], tiny_settings(), facts, facts)
    line = next(row for row in report.splitlines() if row.startswith("ours/fused vs fastest"))
    assert line == (
        "ours/fused vs fastest peer: train 1.50x (torch/1t)  infer_one 2.00x (keras/step+xla)  "
        "infer_batch 0.50x (keras/step+xla)  startup 0.25x (torch/1t)"
    )


def test_peers_have_the_weights_of_ours():
    workload = quick(WORKLOADS["W2"])  # two layers: the hand-off is layer k to layer k
    ours = OursRunner(workload, "fused", tiny_settings())
    try:
        ours_count = sum(w.size for w in ours.model.get_weights().values())
    finally:
        ours.close()
    for unroll in (False, True):
        assert KerasRunner(workload, tiny_settings(), unroll=unroll).model.count_params() == (
            ours_count
        )
    # nn.LSTM keeps two bias vectors per layer (input and recurrent) where ours has one.
    runner = TorchRunner(workload, tiny_settings(), threads=1)
    torch_count = sum(p.numel() for p in runner.parameters)
    lstm_layers = 2 * workload.num_layers
    assert torch_count == ours_count + lstm_layers * 4 * workload.num_units


@pytest.mark.parametrize("options", [{}, {"xla": True}, {"unroll": True}], ids=str)
def test_keras_forecast_is_the_model_fed_its_own_predictions(options):
    """Autoregressive decoding: teacher-forcing the model with its own forecast reproduces it."""
    workload = quick(WORKLOADS["W2"])
    runner = KerasRunner(workload, tiny_settings(), **options)
    inputs, _ = tiny_inputs(workload)
    forecast = runner.forecast(inputs)
    assert forecast.shape == (3, workload.horizon)
    teacher_forced = runner.model([inputs, forecast], training=False).numpy()
    np.testing.assert_allclose(teacher_forced, forecast, atol=1e-5)


def test_keras_with_and_without_xla_is_one_model():
    workload = quick(WORKLOADS["W1"])
    inputs, targets = tiny_inputs(workload)
    forecasts, losses = [], []
    for xla in (False, True):
        runner = KerasRunner(workload, tiny_settings(), xla=xla)  # same seed, same weights
        forecasts.append(runner.forecast(inputs))
        losses.append([runner.train_step(inputs, targets) for _ in range(3)])
    np.testing.assert_allclose(forecasts[0], forecasts[1], atol=1e-5)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert losses[0][-1] < losses[0][0]


def test_torch_forecast_is_the_model_fed_its_own_predictions_and_trains():
    workload = quick(WORKLOADS["W2"])
    runner = TorchRunner(workload, tiny_settings(), threads=1)
    inputs, targets = tiny_inputs(workload)
    forecast = runner.forecast(inputs)
    assert forecast.shape == (3, workload.horizon)
    with torch.no_grad():
        teacher_forced = runner.teacher_forced(inputs, forecast).numpy()
    np.testing.assert_allclose(teacher_forced, forecast, atol=1e-5)
    losses = [runner.train_step(inputs, targets) for _ in range(5)]
    assert losses[-1] < losses[0]


def test_torch_runners_set_their_own_thread_count():
    workload = quick(WORKLOADS["W1"])
    for threads in (1, 2):
        TorchRunner(workload, tiny_settings(), threads=threads).enter()
        assert torch.get_num_threads() == threads


def test_main_quick_prints_machine_facts_and_a_table_per_workload(capsys):
    intra, inter = current_threads()
    code = main(
        ["--quick", "--workloads", "W1", "--intra-op", str(intra), "--inter-op", str(inter)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"TensorFlow {tf.__version__}" in out and f"PyTorch {torch.__version__}" in out
    assert "vector extensions: " in out
    assert "W1: train batch" in out and "W2:" not in out
    assert "ours/fused vs fastest peer: train " in out


def test_threads_cannot_change_once_the_eager_context_runs():
    intra, inter = current_threads()
    tf.constant(0.0)  # initialises the eager context if nothing has yet
    with pytest.raises(RuntimeError, match="already runs with intra-op/inter-op threads"):
        configure_threads(intra + 1, inter)

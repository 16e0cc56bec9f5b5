"""The benchmark on tiny models: it measures, reports same-run ratios, and compares like with like.

No speed thresholds: how fast things are is what the benchmark reports, not what tests assert.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from benchmarks.bench import (
    KERAS,
    WORKLOADS,
    KerasRunner,
    MachineFacts,
    Measurement,
    OursRunner,
    Settings,
    Timing,
    configure_threads,
    format_report,
    main,
    quick,
    run_benchmark,
)
from forecaster.models.seq2seq.lstm import SEQUENCE_IMPLEMENTATIONS


def current_threads() -> tuple[int, int]:
    """The eager context's thread counts: other tests may already have fixed them."""
    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def tiny_settings() -> Settings:
    intra, inter = current_threads()
    return Settings(rounds=2, steps=2, infer_calls=2, warmup=1, intra_op=intra, inter_op=inter)


@pytest.fixture(scope="module")
def run():
    settings = tiny_settings()
    before = MachineFacts.collect()
    measurements = run_benchmark([quick(w) for w in WORKLOADS.values()], settings)
    return measurements, format_report(measurements, settings, before, MachineFacts.collect())


def test_every_workload_measures_each_encoder_of_ours_and_keras(run):
    measurements, _ = run
    expected = [f"ours/{name}" for name in SEQUENCE_IMPLEMENTATIONS] + [KERAS]
    for name in WORKLOADS:
        rows = [m.implementation for m in measurements if m.workload.name == name]
        assert rows == expected


def test_every_figure_is_positive_and_finite(run):
    measurements, _ = run
    for m in measurements:
        for timing in (m.train_windows_per_s, m.infer_ms_one, m.infer_ms_batch):
            assert timing.samples
            assert all(math.isfinite(x) and x > 0 for x in timing.samples)
            assert math.isfinite(timing.median) and timing.median > 0


def test_printed_ratios_are_ours_over_the_reference_from_the_same_run():
    """Ours trains twice as fast and answers in a quarter / half the time: the table says so."""
    workload = WORKLOADS["W1"]

    def measured(name: str, train: float, one: float, batch: float) -> Measurement:
        return Measurement(
            workload, name, Timing((train, train)), Timing((one, one)), Timing((batch, batch))
        )

    measurements = [
        measured("ours/fused", train=3000.0, one=0.5, batch=20.0),
        measured(KERAS, train=1500.0, one=2.0, batch=40.0),
    ]
    facts = MachineFacts.collect()
    report = format_report(measurements, tiny_settings(), facts, facts)
    row = next(line for line in report.splitlines() if line.startswith("ours/fused "))
    assert row.split()[-3:] == ["2.00", "0.25", "0.50"]
    reference = next(line for line in report.splitlines() if line.startswith(f"{KERAS} "))
    assert reference.split()[-1] == "(reference)"


def test_keras_reference_has_as_many_weights_as_ours():
    workload = quick(WORKLOADS["W2"])  # two layers: the hand-off is layer k to layer k
    keras_model = KerasRunner(workload, tiny_settings())
    ours = OursRunner(workload, "fused", tiny_settings())
    try:
        ours_count = sum(w.size for w in ours.model.get_weights().values())
        assert keras_model.model.count_params() == ours_count
    finally:
        ours.close()


def test_keras_forecast_is_the_model_fed_its_own_predictions():
    """Autoregressive decoding: teacher-forcing the model with its own forecast reproduces it."""
    workload = quick(WORKLOADS["W2"])
    runner = KerasRunner(workload, tiny_settings())
    inputs = np.random.default_rng(0).standard_normal(
        (3, workload.lookback, workload.num_features), dtype=np.float32
    )
    forecast = runner.forecast(inputs)
    assert forecast.shape == (3, workload.horizon)
    teacher_forced = runner.model([inputs, forecast], training=False).numpy()
    np.testing.assert_allclose(teacher_forced, forecast, atol=1e-5)


def test_main_quick_prints_machine_facts_and_a_table_per_workload(capsys):
    intra, inter = current_threads()
    code = main(
        ["--quick", "--workloads", "W1", "--intra-op", str(intra), "--inter-op", str(inter)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"TensorFlow {tf.__version__}" in out
    assert "W1: train batch" in out and "W2:" not in out
    assert "train ratio > 1 = ours faster; infer ratios < 1 = ours faster" in out


def test_threads_cannot_change_once_the_eager_context_runs():
    intra, inter = current_threads()
    tf.constant(0.0)  # initialises the eager context if nothing has yet
    with pytest.raises(RuntimeError, match="already runs with intra-op/inter-op threads"):
        configure_threads(intra + 1, inter)

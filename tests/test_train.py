"""`train(cfg)` end to end: from a CSV to a complete MLflow run, checked through MlflowClient."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT
from mlflow.tracking import MlflowClient

from forecaster.cli.train import train
from forecaster.errors import ConfigError, DataError, TrainingDivergedError
from forecaster.evaluation.metrics import METRIC_NAMES
from forecaster.evaluation.probabilistic import PROBABILISTIC_METRIC_NAMES

pytestmark = pytest.mark.slow


def git(*args: str) -> str:
    """The repository's own answer, to compare a run's git tags with."""
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def only_run(tracking_uri: str):
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("forecaster")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize("dataset", ["synthetic", "sp500"])
def test_train_logs_a_complete_run(tiny_config, tracking_uri, dataset, tmp_path):
    cfg = tiny_config(f"data={dataset}", "model.num_layers=2")
    metrics = train(cfg)
    client, run = only_run(tracking_uri)

    assert run.info.status == "FINISHED"
    assert mlflow.active_run() is None
    params = run.data.params
    assert params["model.num_units"] == "8"
    assert params["model.num_layers"] == "2"
    assert params["window.horizon"] == "5"
    assert params["data.path"].endswith(f"{dataset}.csv")
    assert run.data.tags["data.sha256"] and len(run.data.tags["data.sha256"]) == 64
    assert run.data.tags["data.file"].endswith(f"{dataset}.csv")

    for name in METRIC_NAMES:
        assert np.isfinite(run.data.metrics[f"test_{name}"])
        for baseline in ("naive", "drift", "ridge"):  # train.baselines, on the same origins
            assert np.isfinite(run.data.metrics[f"{baseline}_test_{name}"])
        assert run.data.metrics[f"test_{name}"] == pytest.approx(metrics[f"test_{name}"])
    maes = {b: run.data.metrics[f"{b}_test_mae"] for b in ("naive", "drift", "ridge")}
    best = min(maes, key=maes.get)
    assert run.data.tags["test_best_baseline"] == best
    assert run.data.metrics["test_skill_vs_best_baseline"] == pytest.approx(
        1 - run.data.metrics["test_mae"] / maes[best]
    )
    for curve in ("train_loss", "val_loss"):
        history = client.get_metric_history(run.info.run_id, curve)
        assert [m.step for m in history] == [1, 2]

    config_yaml = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path))
    assert "${" not in open(config_yaml).read()  # resolved: the values the run used
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "states", "plots"} <= artifacts
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/forecast.png", "plots/learning_curve.png"}

    # Artifacts live in mlartifacts/ beside the SQLite file.
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    assert (store / "mlartifacts" / run.info.run_id / "artifacts" / "config.yaml").exists()
    local = client.download_artifacts(run.info.run_id, "states", str(tmp_path))
    states = np.load(f"{local}/final_states.npz")
    expected = {f"{m}_{p}_{k}" for m in ("encoder", "decoder") for p in "ch" for k in (0, 1)}
    assert set(states.files) == expected | {"last_price", "last_date"}
    for name in expected:
        assert states[name].shape == (1, 8)
    assert not np.array_equal(states["encoder_c_0"], states["encoder_h_0"])
    assert np.abs(states["encoder_h_1"]).max() < 1.0  # h = o * tanh(c)

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    csv = pd.read_csv(REPO_ROOT / "data" / f"{dataset}.csv", parse_dates=["Date"])
    forecast = model.predict(csv.tail(100))
    assert list(forecast.columns) == ["step", "date", "forecast"]
    assert list(forecast["step"]) == [1, 2, 3, 4, 5]
    assert (forecast["forecast"] > 0).all()
    # The served model dates its forecast as trained: sp500 on the NYSE calendar (its last bar is
    # 2018-12-31, and 2019-01-01 is a holiday), synthetic (no calendar) by business days.
    expected = {"synthetic": "2019-09-02", "sp500": "2019-01-02"}[dataset]
    assert forecast["date"].iloc[0] == pd.Timestamp(expected)


def test_a_run_with_interval_baselines_logs_their_scores_and_calibration(
    tiny_config, tracking_uri, tmp_path
):
    metrics = train(tiny_config("train.baselines=[naive,garch_t,rw_normal]"))
    client, run = only_run(tracking_uri)
    for name in ("garch_t", "rw_normal"):
        for metric in PROBABILISTIC_METRIC_NAMES:
            assert run.data.metrics[f"{name}_test_{metric}"] == pytest.approx(
                metrics[f"{name}_test_{metric}"]
            )
        assert 0.5 < run.data.metrics[f"{name}_test_coverage_90"] <= 1.0
    assert "test_coverage_90" not in run.data.metrics  # the seq2seq forecasts points (for now)
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/calibration.png", "plots/pit.png"} <= plots
    local = client.download_artifacts(run.info.run_id, "eval/intervals_by_step.csv", str(tmp_path))
    steps = pd.read_csv(local)
    assert set(steps["model"]) == {"garch_t", "rw_normal"} and len(steps) == 2 * 5
    garch = steps[steps["model"] == "garch_t"]
    assert garch["crps"].mean() == pytest.approx(metrics["garch_t_test_crps"])


def test_same_seed_same_metrics(tiny_config):
    first = train(tiny_config("seed=3"))
    second = train(tiny_config("seed=3"))
    other = train(tiny_config("seed=4"))
    assert first == second
    assert first != other


def test_bad_input_fails_the_run_with_the_reason(tiny_config, tracking_uri, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="nope.csv"):
        train(tiny_config(f"data.path={missing}"))
    client, run = only_run(tracking_uri)
    assert run.info.status == "FAILED"
    assert "DataError" in run.data.tags["failure_reason"]
    assert "nope.csv" in run.data.tags["failure_reason"]
    assert mlflow.active_run() is None
    assert run.data.params["data.path"] == str(missing)  # what was logged before is kept


def test_an_objective_no_run_logs_is_refused_before_training(tiny_config, tracking_uri):
    with pytest.raises(ConfigError, match=r"objective.metric='test_sharpe' is not a metric"):
        train(tiny_config("objective.metric=test_sharpe"))
    _, run = only_run(tracking_uri)
    assert run.info.status == "FAILED" and "train_loss" not in run.data.metrics


def test_diverging_loss_fails_the_run(tiny_config, tracking_uri):
    with pytest.raises(TrainingDivergedError, match="train.learning_rate"):
        train(tiny_config("train.learning_rate=1e30", "train.epochs=5"))
    _, run = only_run(tracking_uri)
    assert run.info.status == "FAILED"
    assert "TrainingDivergedError" in run.data.tags["failure_reason"]
    assert mlflow.active_run() is None


def test_cli_train_runs_from_the_command_line(tracking_uri, tmp_path):
    from conftest import TINY

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forecaster",
            "train",
            *TINY,
            "train.epochs=1",
            f"tracking.uri={tracking_uri}",
            f"hydra.run.dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _, run = only_run(tracking_uri)
    assert run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags  # a single run has no parent
    tags = run.data.tags
    assert tags["command"].startswith("python -m forecaster train data=synthetic")
    assert "tracking.uri=" in tags["command"]
    commit, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    assert tags["git.commit"] == tags["mlflow.source.git.commit"] == commit
    assert tags["git.dirty"] == ("true" if dirty else "false")
    assert tags["version.tensorflow-cpu"] == importlib.metadata.version("tensorflow-cpu")
    assert tags["version.mlflow"] == mlflow.__version__
    assert run.info.run_name.startswith("data=synthetic window.lookback=20")  # the overrides


def test_cli_without_a_command_prints_usage():
    result = subprocess.run(
        [sys.executable, "-m", "forecaster"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "usage: forecaster <command>" in result.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "forecaster", "trian"], capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2
    assert "unknown command 'trian'" in unknown.stderr

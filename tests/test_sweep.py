"""Sweeps: one parent run per sweep, a child per job, failed jobs contained, replayable runs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY, compose_config, compose_train_config
from mlflow.tracking import MlflowClient

from forecaster.cli.predict import predict
from forecaster.tracking.provenance import shown_overrides

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml"))


def run_cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "forecaster", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def runs_by_role(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("forecaster")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if "forecaster.sweep_dir" in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


@pytest.mark.slow
def test_parallel_grid_sweep_with_a_failing_job(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = run_cli(
        "train",
        "-m",
        *TINY,
        "launcher=joblib",
        f"tracking.uri={uri}",
        "model.num_units=8,16",
        "window.lookback=20,99999",  # lookback 99999: impossible
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        cwd=tmp_path,
    )
    client, parents, children = runs_by_role(uri)
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}

    # The parent is named by the sweep's overrides, a child by what is its own.
    assert parent.info.run_name.startswith("sweep data=synthetic")
    assert "tracking.uri" not in parent.info.run_name
    assert {frozenset(c.info.run_name.split()) for c in children} == {
        frozenset([f"model.num_units={u}", f"window.lookback={n}"])
        for u in (8, 16)
        for n in (20, 99999)
    }
    failed = [c for c in children if c.info.status == "FAILED"]
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(failed) == 2 and len(finished) == 2
    for run in failed:
        assert "window.lookback=99999" in run.info.run_name
        assert "too short" in run.data.tags["failure_reason"]
    for run in finished:
        assert "test_rmse" in run.data.metrics and "naive_test_rmse" in run.data.metrics
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "plots", "states"} <= artifacts
        assert run.data.params["train.intra_op_threads"] == "1"  # the joblib preset

    # The parent's summary: every child, sorted by the objective; the best child named.
    summary = pd.read_csv(
        client.download_artifacts(parent.info.run_id, "sweep/summary.csv", str(tmp_path))
    )
    assert len(summary) == 4
    best = min(finished, key=lambda r: r.data.metrics["best_val_loss"])
    assert summary["run_id"][0] == best.info.run_id
    assert parent.data.tags["best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_val_loss"] == best.data.metrics["best_val_loss"]
    assert parent.data.metrics["sweep_failed_jobs"] == 2
    assert "model.num_units=8,16" in parent.data.tags["sweep.overrides"]
    sweep_artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/summary.csv", "sweep/summary.png", "sweep/overrides.txt"} <= sweep_artifacts

    # On the terminal: every job's lines say whose they are; the end says which run won, by
    # how much, and where to look.
    terminal = sweep.stdout + sweep.stderr
    labels = set(re.findall(r"\[job \d+: ([^\]]+)\]", terminal))
    assert labels == {c.info.run_name for c in children}
    assert "4 jobs, 2 failed" in terminal
    assert f"best run {best.info.run_name} ({best.info.run_id}): best_val_loss " in terminal
    assert re.search(r"test rmse [\d.]+ vs naive [\d.]+ \(skill -?[\d.]+\)", terminal)
    assert f"#/experiments/{best.info.experiment_id}/runs/{parent.info.run_id}" in terminal

    # `predict sweep=<the parent's name> pick=best` forecasts with the best run, and says so.
    predict(
        compose_config(
            "predict",
            [
                "data=synthetic",
                f"tracking.uri={uri}",
                f"sweep='{parent.info.run_name}'",  # quoted: a name holds = and ,
                "pick=best",
                f"output={tmp_path / 'best.csv'}",
            ],
        )
    )
    picked = capsys.readouterr().out
    assert f"best of sweep {parent.info.run_id}" in picked
    assert f"by best_val_loss (minimize): run {best.info.run_id}" in picked

    # Replayable in one step: the logged command reruns the job to the same metrics.
    tags = best.data.tags
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert tags["git.commit"] == head
    assert tags["seed"] == "42" and tags["version.mlflow"] == mlflow.__version__
    replay = shlex.split(tags["command"])
    assert replay[:4] == ["python", "-m", "forecaster", "train"]
    run_cli(*replay[3:], f"hydra.run.dir={tmp_path / 'replay'}", cwd=tmp_path)
    replayed = [
        r
        for r in client.search_runs([best.info.experiment_id], max_results=100)
        if "mlflow.parentRunId" not in r.data.tags and "forecaster.sweep_dir" not in r.data.tags
    ]
    assert len(replayed) == 1  # a single run has no parent
    assert replayed[0].data.metrics["test_rmse"] == best.data.metrics["test_rmse"]


@pytest.mark.slow
def test_optuna_sweep_is_reproducible(tmp_path):
    def optuna_sweep(name: str):
        uri = f"sqlite:///{tmp_path / name / 'mlflow.db'}"
        (tmp_path / name).mkdir()
        run_cli(
            "train",
            *TINY,
            "hparams_search=optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler.n_startup_trials=2",
            f"tracking.uri={uri}",
            f"hydra.sweep.dir={tmp_path / name / 'sweep'}",
            cwd=tmp_path,
        )
        _, parents, children = runs_by_role(uri)
        assert len(parents) == 1 and len(children) == 3
        return sorted(
            (c.info.run_name, round(c.data.metrics["best_val_loss"], 6)) for c in children
        )

    first = optuna_sweep("a")
    assert first == optuna_sweep("b")
    assert all("train.learning_rate=" in name for name, _ in first)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes(name):
    cfg = compose_train_config([f"experiment={name}", "tracking.uri=sqlite:////tmp/unused.db"])
    assert Path(cfg.data.path).exists()
    assert cfg.window.horizon >= 1 and cfg.seed == 42
    text = (REPO_ROOT / "experiments" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    assert f"experiment={name}" in text  # each recipe says how to run it
    assert name in (REPO_ROOT / "experiments" / "README.md").read_text()  # and its result


def test_multi_series_experiment_sweeps_over_the_bundled_series():
    cfg = compose_config("train", ["experiment=multi_series"], return_hydra_config=True)
    assert cfg.hydra.sweeper.params.data == "sp500,nasdaq,synthetic"
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"


def test_run_names_show_what_tells_runs_apart():
    sweep = ["data=synthetic", "model.num_units=8", "model.num_units=8,16", "tracking.uri=x"]
    job = ["data=synthetic", "model.num_units=8", "model.num_units=16", "tracking.uri=x"]
    assert shown_overrides(job, sweep) == ["model.num_units=8", "model.num_units=16"]
    assert shown_overrides(["+hydra.job.chdir=true", "seed=3"]) == ["seed=3"]
    # What is done with the model after its run does not name it.
    deploy = ["train.refit_full=true", "train.register_as=sp500-daily", "window.horizon=20"]
    assert shown_overrides(deploy) == ["window.horizon=20"]

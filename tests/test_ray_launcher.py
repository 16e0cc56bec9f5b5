"""Sweeps on a Ray cluster: `launcher=ray` runs every job as a task on the cluster's workers.

The config is checked at compose time; the slow test runs a sweep on a real cluster,
`ray start --head` on 127.0.0.1 with 2 CPUs, started and stopped by its fixture.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY, compose_config
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

RAY = Path(sys.executable).with_name("ray")  # the venv's, so its workers run this venv's Python
# Ray replaces 127.0.0.1 with this machine's network address unless told the cluster is one
# machine; with this the head, the workers and the launching driver talk over loopback only,
# and send Ray no usage report.
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def compose_with_ray_launcher() -> DictConfig:
    return compose_config("train", ["launcher=ray"], return_hydra_config=True)


def test_ray_launcher_runs_one_single_threaded_job_per_cpu(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = compose_with_ray_launcher()
    assert cfg.hydra.launcher._target_.endswith("LoopbackRayLauncher")
    assert cfg.hydra.launcher.ray.init.address is None  # start Ray here for the sweep
    assert cfg.hydra.launcher.ray.remote.num_cpus == 1
    assert cfg.train.intra_op_threads == 1


def test_ray_launcher_joins_the_cluster_RAY_ADDRESS_names(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "head.example:6379")
    cfg = compose_with_ray_launcher()
    assert cfg.hydra.launcher.ray.init.address == "head.example:6379"
    assert cfg.hydra.launcher.ray.init.object_store_memory is None  # Ray refuses one when joining


@dataclass(frozen=True)
class RayCluster:
    address: str  # host:port of the head, what `hydra.launcher.ray.init.address` takes
    env: dict[str, str]  # the environment a process needs to join it: loopback, its token
    logs: Path  # the session's logs, where the workers' output goes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path: Path) -> Iterator[RayCluster]:
    """A one-node Ray cluster on 127.0.0.1 with 2 CPUs, run from its own directory.

    `ray start --block` ties the cluster's processes to one process group that is ours, so
    teardown ends exactly those (`ray stop` would end every Ray process on the machine).
    """
    # Token authentication with a token of its own, whatever ~/.ray/auth_token holds.
    env = (
        os.environ
        | LOOPBACK_ONLY
        | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    )
    # Short: Ray's socket paths under it must fit in 107 bytes, which pytest's tmp_path breaks.
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    port = free_port()
    head_log = tmp_path / "ray_head.log"
    with head_log.open("w") as out:
        head = subprocess.Popen(
            [
                str(RAY),
                "start",
                "--head",
                "--block",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--num-cpus=2",
                "--include-dashboard=false",
                "--disable-usage-stats",
                # Ports Ray would otherwise take at fixed numbers, clashing with other clusters.
                f"--ray-client-server-port={free_port()}",
                f"--dashboard-agent-listen-port={free_port()}",
                f"--temp-dir={temp_dir}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=temp_dir,  # not the launcher's directory: jobs must not depend on it
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in head_log.read_text():
            assert head.poll() is None, head_log.read_text()[-4000:]
            assert time.monotonic() < deadline, head_log.read_text()[-4000:]
            time.sleep(0.5)
        yield RayCluster(f"127.0.0.1:{port}", env, temp_dir / "session_latest" / "logs")
    finally:
        head.terminate()
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the cluster outlived its head
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_runs_its_jobs_on_the_ray_cluster(tmp_path, ray_cluster):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forecaster",
            "train",
            "-m",
            "launcher=ray",
            f"hydra.launcher.ray.init.address={ray_cluster.address}",
            *TINY,
            f"tracking.uri={uri}",
            "model.num_units=8,16",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # the sweep directory defaults to multirun/ under it
        env=ray_cluster.env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("forecaster")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "forecaster.sweep_dir" in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep_jobs"] == 2 and parent.data.metrics["sweep_failed_jobs"] == 0
    assert sorted(c.data.params["model.num_units"] for c in children) == ["16", "8"]

    # The launcher and the workers (started in another directory) name the same sweep directory.
    sweep_dir = Path(parent.data.tags["forecaster.sweep_dir"])
    assert sweep_dir.is_relative_to(tmp_path / "multirun")
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]

    worker_output = "".join(
        p.read_text(errors="replace") for p in ray_cluster.logs.glob("worker-*") if p.is_file()
    )
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert "test_rmse" in run.data.metrics and "naive_test_rmse" in run.data.metrics
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "plots", "states"} <= artifacts
        # Each job ran in a Ray worker process of this cluster: MLflow names the script that
        # started the run, and the job's log lines are in the cluster's worker logs.
        assert Path(run.data.tags["mlflow.source.name"]).name == "default_worker.py"
        assert f"run {run.info.run_id}" in worker_output

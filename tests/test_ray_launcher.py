"""Sweeps on a Ray cluster: `launcher=ray` runs every job as a task on the cluster's workers.

The config is checked at compose time; the slow test runs a sweep on a real cluster,
`ray start --head` on 127.0.0.1 with 2 CPUs, started and stopped by its fixture.
"""

from __future__ import annotations

import ipaddress
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
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK_ONLY = {LOOPBACK_ENV: "0", "RAY_USAGE_STATS_ENABLED": "0"}


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


def listening_sockets(root: int) -> set[tuple[str, str]]:
    """(process name, "address:port") of every TCP socket listening in `root` or any process
    it started, read from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    family, todo = set(), [root]
    while todo:
        pid = todo.pop()
        family.add(pid)
        todo += children.get(pid, [])
    listening = {}  # socket inode -> address
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                address, port = fields[1].split(":")
                listening[fields[9]] = f"{decode_address(address, width)}:{int(port, 16)}"
    found = set()
    for pid in family:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listening:
                found.add((names.get(pid, "?"), listening[target[8:-1]]))
    return found


def decode_address(hex_address: str, width: int) -> str:
    """/proc/net/tcp writes addresses as little-endian 32-bit words in hex."""
    raw = bytes.fromhex(hex_address)
    address = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
    return str(getattr(address, "ipv4_mapped", None) or address)  # ::ffff:127.0.0.1 as IPv4


def loopback(address: str) -> bool:
    return ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]")).is_loopback


@pytest.mark.slow
def test_a_ray_started_for_a_sweep_listens_on_loopback_only(tmp_path):
    """`launcher=ray` without an address starts Ray itself: not one of its sockets may listen
    beyond this machine."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    temp_dir = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # no cluster recorded there
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", LOOPBACK_ENV)}
    env |= {"RAY_TMPDIR": str(temp_dir), "RAY_USAGE_STATS_ENABLED": "0"}
    sweep = subprocess.Popen(
        [
            sys.executable, "-m", "forecaster", "train", "-m", "launcher=ray", *TINY,
            f"tracking.uri={uri}", "model.num_units=8,16",
        ],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    seen: set[tuple[str, str]] = set()
    try:
        while sweep.poll() is None:
            seen |= listening_sockets(sweep.pid)
            time.sleep(0.5)
        output = sweep.stdout.read()
    finally:
        if sweep.poll() is None:
            sweep.kill()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert sweep.returncode == 0, output[-4000:]
    names = {name for name, _ in seen}
    assert {"gcs_server", "raylet"} <= names, seen  # Ray's own servers were seen listening
    exposed = {(name, at) for name, at in seen if not loopback(at)}
    assert not exposed
    assert "starting Ray for this sweep on 127.0.0.1 only" in output

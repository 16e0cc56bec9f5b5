"""The README's shared set-up, for real: an `mlflow server` on PostgreSQL, a parallel sweep and
eight independent `train` processes tracking to it at once, and nothing lost.

PostgreSQL is Debian's `postgresql` package (`.ci/run` installs it, as it installs Chromium): a
private cluster is created for the module under /tmp, listening on 127.0.0.1 only, and removed
afterwards. As root, its programs run as the `postgres` user, which PostgreSQL requires.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import TINY, finish, start_forecaster
from mlflow.tracking import MlflowClient
from mlflow_server import free_port, mlflow_server

pytestmark = pytest.mark.slow

POSTGRES_INSTALL = "apt-get update && apt-get install -y postgresql"
HOST = "127.0.0.1"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's programs (Debian keeps them off the PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A running PostgreSQL with an empty database `mlflow`: its URI."""
    binaries = postgres_bin()
    if binaries is None:
        message = f"PostgreSQL is needed: {POSTGRES_INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # short: the socket path must fit
    root.chmod(0o755)
    if as_postgres:
        shutil.chown(root, "postgres")
    port = free_port()

    def run(program: str, *args: str) -> None:
        command = [*as_postgres, str(binaries / program), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"

    data = root / "data"
    try:
        run("initdb", "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8")
        run(
            "pg_ctl", "-D", str(data), "-l", str(root / "postgres.log"), "-w", "start",
            "-o", f"-c listen_addresses={HOST} -p {port} -k {root}",
        )  # fmt: skip
        run("createdb", "-h", HOST, "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql://mlflow@{HOST}:{port}/mlflow"
    finally:
        if (data / "postmaster.pid").exists():
            run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    with mlflow_server(tmp_path_factory.mktemp("server"), backend_store_uri=postgres) as server:
        yield server


def finished(process: subprocess.Popen) -> str:
    status, output = finish(process, timeout=900)
    assert status == 0, output[-4000:]
    return output


def assert_complete(client: MlflowClient, run) -> None:
    """A run with everything a training run logs."""
    assert run.info.status == "FINISHED"
    assert {"test_rmse", "naive_test_rmse", "best_val_loss"} <= run.data.metrics.keys()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "plots", "states"} <= artifacts
    assert len(run.outputs.model_outputs) == 1


def test_a_sweep_and_eight_writers_on_a_postgresql_server_lose_nothing(postgres, server, tmp_path):
    uri = server.url
    sweep = start_forecaster(
        "train", "-m", "launcher=joblib", *TINY, "model.num_units=8,16", f"tracking.uri={uri}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    finished(sweep)
    writers = [
        start_forecaster(
            "train",
            *TINY,
            f"seed={seed}",
            f"tracking.uri={uri}",
            f"hydra.run.dir={tmp_path / f'run{seed}'}",
            cwd=tmp_path,
        )  # fmt: skip
        for seed in range(8)
    ]
    for writer in writers:
        finished(writer)

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("forecaster")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if "forecaster.sweep_dir" in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    singles = [r for r in runs if r not in parents and r not in children]
    assert len(parents) == 1 and len(children) == 2 and len(singles) == 8
    assert parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["sweep_failed_jobs"] == 0
    assert sorted(r.data.tags["seed"] for r in singles) == [str(s) for s in range(8)]
    for run in children + singles:
        assert_complete(client, run)
    # The runs are in PostgreSQL itself, not somewhere else the server may have put them.
    with psycopg.connect(postgres) as connection:
        (count,) = connection.execute("SELECT count(*) FROM runs").fetchone()
    assert count == 11
    # Artifacts went through the server into its artifact store.
    assert len(list((server.root / "artifacts").rglob("forecast.png"))) == 10

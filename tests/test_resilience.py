"""Nothing lost, nothing left hanging: real processes killed, stopped and resumed; stores raced,
half-built and orphaned; sweeps that lose a worker or are stopped.

The end-to-end tests (marked slow) run `python -m forecaster` as a user does and act on the
process by its PID, as docker, Slurm, a terminal or the out-of-memory killer would.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import TINY, compose_train_config, finish, start_forecaster
from mlflow.tracking import MlflowClient

from forecaster.errors import ConfigError, TrainingInterrupted
from forecaster.tracking import store
from forecaster.training.stopping import StopRequest

# Long enough epochs (218 batches of 8, about a second) to kill a process inside one.
LONG_EPOCHS = [
    "data=synthetic",
    "window.lookback=20",
    "model.num_units=16",
    "train.epochs=5",
    "train.patience=5",
    "train.batch_size=8",
    "train.intra_op_threads=1",
    "eval.plot_origins=2",
]


def wait_for(condition, what: str, timeout: float = 300, process=None):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}:\n{process.stdout.read()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return found


def latest_checkpoint(checkpoints: Path) -> str | None:
    """The newest checkpoint's name of the one run checkpointing under `checkpoints`."""
    for pointer in checkpoints.glob("*/latest"):
        try:
            return pointer.read_text()
        except FileNotFoundError:  # replaced at this very moment
            return None
    return None


def only_run(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


def history(client: MlflowClient, run_id: str, metric: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: the same config trained without interruption, in this process."""
    from forecaster.cli.train import train

    uri = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'mlflow.db'}"
    metrics = train(compose_train_config([*LONG_EPOCHS, f"tracking.uri={uri}"]))
    client, run = only_run(uri)
    return metrics, {m: history(client, run.info.run_id, m) for m in ("train_loss", "val_loss")}


def assert_resumed_exactly(uri: str, run_id: str, uninterrupted, checkpoints: Path) -> None:
    """The run finished, as itself, with every metric of the uninterrupted run, bit for bit,
    each epoch logged once, and its checkpoints gone."""
    expected_metrics, expected_history = uninterrupted
    client, run = only_run(uri)
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    for name, value in expected_metrics.items():
        assert run.data.metrics[name] == value, name
    for metric, expected in expected_history.items():
        assert history(client, run_id, metric) == expected  # no epoch twice, none missing
    assert "failure_reason" not in run.data.tags
    assert not (checkpoints / run_id).exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_reaches_the_uninterrupted_metrics(uninterrupted, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    checkpoints = tmp_path / "checkpoints"
    common = [*LONG_EPOCHS, f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'out'}"]
    process = start_forecaster("train", *common, f"checkpoint_dir={checkpoints}", cwd=tmp_path)
    wait_for(lambda: latest_checkpoint(checkpoints) == "epoch-0001", "epoch 1", process=process)
    started = time.monotonic()
    wait_for(lambda: latest_checkpoint(checkpoints) == "epoch-0002", "epoch 2", process=process)
    epoch = time.monotonic() - started
    time.sleep(0.4 * epoch)  # well inside epoch 3
    os.kill(process.pid, signal.SIGKILL)
    status, output = finish(process)
    assert status == -signal.SIGKILL
    assert latest_checkpoint(checkpoints) == "epoch-0002"  # killed before epoch 3 ended
    client, killed = only_run(uri)
    assert killed.info.status == "RUNNING"  # SIGKILL leaves no chance to end it
    assert [step for step, _ in history(client, killed.info.run_id, "train_loss")] == [1, 2]

    # The next command that opens the store ends the orphan FAILED, and `resume=last` finds it.
    resume = start_forecaster(
        "train", "resume=last", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'out2'}",
        cwd=tmp_path,
    )  # fmt: skip
    status, output = finish(resume)
    assert status == 0, output[-4000:]
    assert f"resuming run {killed.info.run_id}" in output
    assert_resumed_exactly(uri, killed.info.run_id, uninterrupted, checkpoints)
    _, run = only_run(uri)
    assert run.data.tags["forecaster.previous_failure"].startswith(
        f"orphaned: its process (pid {process.pid} on {socket.gethostname()}) ended"
    )


@pytest.mark.slow
def test_sigterm_stops_at_a_batch_boundary_with_a_checkpoint_and_resume_is_exact(
    uninterrupted, tmp_path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    checkpoints = tmp_path / "checkpoints"
    common = [*LONG_EPOCHS, f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'out'}"]
    process = start_forecaster("train", *common, f"checkpoint_dir={checkpoints}", cwd=tmp_path)
    wait_for(lambda: latest_checkpoint(checkpoints) == "epoch-0001", "epoch 1", process=process)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)  # what docker, Kubernetes and Slurm send
    status, output = finish(process)

    assert status == 128 + signal.SIGTERM, output[-4000:]
    assert "Traceback" not in output
    client, run = only_run(uri)
    run_id = run.info.run_id
    assert run.info.status == "KILLED"
    checkpoint = latest_checkpoint(checkpoints)
    assert checkpoint.startswith("epoch-0002-batch-")  # where it stopped, inside epoch 2
    batch = int(checkpoint.rsplit("-", 1)[1])
    reason = (
        f"SIGTERM received: training stopped in epoch 2 after batch {batch} of 218 (checkpoint "
        f"{checkpoints / run_id / checkpoint})"
    )
    assert run.data.tags["failure_reason"] == (
        f"TrainingInterrupted: {reason}. Continue it with: python -m forecaster train "
        f"resume={run_id}"
    )
    assert f"{reason}. Continue it with: python -m forecaster train resume={run_id}" in output

    resume = start_forecaster(
        "train", f"resume={run_id}", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'o2'}",
        cwd=tmp_path,
    )  # fmt: skip
    status, output = finish(resume)
    assert status == 0, output[-4000:]
    assert_resumed_exactly(uri, run_id, uninterrupted, checkpoints)


def test_a_first_signal_asks_training_to_stop_and_a_second_stops_at_once():
    from forecaster.cli.signals import stop_on_signals

    request = StopRequest()
    with stop_on_signals(request), request.listen():
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: handled between two bytecodes
        time.sleep(0.01)
        assert request.reason == "SIGINT received" and request.signal_number == signal.SIGINT
        with pytest.raises(TrainingInterrupted) as stopped:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert str(stopped.value) == "SIGINT received again: stopped at once, without a checkpoint"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


def test_a_signal_outside_training_stops_at_once():
    from forecaster.cli.signals import stop_on_signals

    with pytest.raises(TrainingInterrupted, match="SIGTERM received while not training"):
        with stop_on_signals(StopRequest()):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)


# -- the store: raced, half-built, orphaned ----------------------------------------------------


@pytest.mark.slow
def test_eight_train_processes_started_at_once_on_a_fresh_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"  # nor the directory exists yet
    processes = [
        start_forecaster(
            "train",
            *TINY,
            f"seed={seed}",
            f"tracking.uri={uri}",
            f"hydra.run.dir={tmp_path / f'out{seed}'}",
            cwd=tmp_path,
        )  # fmt: skip
        for seed in range(8)
    ]
    outcomes = [finish(p) for p in processes]
    for status, output in outcomes:
        assert status == 0, output[-4000:]

    client = MlflowClient(uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "forecaster"]
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    assert sorted(r.data.tags["seed"] for r in runs) == [str(s) for s in range(8)]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert {"test_rmse", "naive_test_rmse", "best_val_loss"} <= run.data.metrics.keys()
        assert [s for s, _ in history(client, run.info.run_id, "val_loss")] == [1, 2]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.yaml", "plots", "states"} <= artifacts
        assert len(run.outputs.model_outputs) == 1  # the logged pyfunc model
    with sqlite3.connect(tmp_path / "fresh" / "mlflow.db") as connection:
        tables = {n for (n,) in connection.execute("SELECT name FROM sqlite_master")}
    assert not [t for t in tables if t.startswith("_alembic_tmp_")]  # no migration raced


def build_store_at(uri: str, revision: str) -> None:
    """A SQLite store migrated up to `revision` only, as MLflow's migration leaves it when it
    stops there."""
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config, create_sqlalchemy_engine
    from mlflow.store.tracking.dbmodels.initial_models import Base as InitialBase

    engine = create_sqlalchemy_engine(uri)
    InitialBase.metadata.create_all(engine)
    config = _get_alembic_config(str(engine.url))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def earlier_revision(steps_back: int) -> str:
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(""))
    revisions = [r.revision for r in script.walk_revisions()]  # newest first
    return revisions[steps_back]


def test_a_store_a_crash_left_half_built_is_moved_aside_and_built_afresh(tmp_path, caplog):
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    build_store_at(uri, earlier_revision(10))
    with sqlite3.connect(database) as connection:  # a copy a migration was making
        connection.execute("CREATE TABLE _alembic_tmp_metrics AS SELECT * FROM metrics")
    connection.close()

    client = store.open_store(uri)
    [moved] = tmp_path.glob("mlflow.db.incomplete-*")
    assert f"moved it to {moved} and built it afresh" in caplog.text
    run = client.create_run(client.create_experiment("works"))
    client.log_metric(run.info.run_id, "x", 1.0)
    client.set_terminated(run.info.run_id)
    assert store._read_schema(database).current


def test_a_half_migrated_store_with_runs_is_reported_with_the_commands_that_fix_it(tmp_path):
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    revision = earlier_revision(3)
    build_store_at(uri, revision)
    with sqlite3.connect(database) as connection:
        connection.execute(
            "INSERT INTO experiments (experiment_id, name, lifecycle_stage) "
            "VALUES (1, 'old', 'active')"
        )
        connection.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
            "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
            "artifact_uri, experiment_id) VALUES ('abc', 'old', 'LOCAL', '', '', 'me', "
            "'FINISHED', 0, 1, '', 'active', '/tmp/abc', 1)"
        )
        connection.execute("CREATE TABLE _alembic_tmp_runs AS SELECT * FROM runs")
    connection.close()

    with pytest.raises(ConfigError) as error:
        store.open_store(uri)
    message = str(error.value)
    assert message.startswith(
        f"tracking.uri={uri!r}: the store holds 1 runs but its schema is incomplete (revision "
        f"{revision} of "
    )
    fix = message.split("finish the migration: ", 1)[1]
    assert fix.startswith(f"cp {database} {database}.bak && python -c ")
    mlflow_bin = Path(sys.executable).parent
    result = subprocess.run(
        fix, shell=True, capture_output=True, text=True, env=os.environ | {
            "PATH": f"{mlflow_bin}:{os.environ['PATH']}"
        }, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = store.open_store(uri)  # fixed: it opens, and the run is still there
    assert client.get_run("abc").info.status == "FINISHED"


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_runs_whose_process_died_are_ended_failed_when_the_store_is_opened(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = store.open_store(uri)
    experiment = client.create_experiment("e")
    here = store.process_tags()

    def running(**tags: str) -> str:
        return client.create_run(experiment, tags=tags).info.run_id

    orphan = running(**here | {store.PID_TAG: str(dead_pid())}, **{store.CHECKPOINT_TAG: "/c"})
    reused = running(**here | {store.PROCESS_START_TAG: "another boot:1"})  # a reused PID
    alive = running(**here)
    elsewhere = running(**here | {store.HOST_TAG: "another-host"})

    store.open_store(uri)
    status = {r: client.get_run(r).info.status for r in (orphan, reused, alive, elsewhere)}
    assert status == {orphan: "FAILED", reused: "FAILED", alive: "RUNNING", elsewhere: "RUNNING"}
    pid = client.get_run(orphan).data.tags[store.PID_TAG]
    assert client.get_run(orphan).data.tags["failure_reason"] == (
        f"orphaned: its process (pid {pid} on {socket.gethostname()}) ended without ending the "
        "run: it was killed (SIGKILL, the out-of-memory killer) or the machine went down. "
        f"Continue it with: python -m forecaster train resume={orphan}"
    )


# -- sweeps ------------------------------------------------------------------------------------


def sweep_runs(uri: str):
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("forecaster").experiment_id], max_results=100
    )
    parents = [r for r in runs if "forecaster.sweep_dir" in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1
    return client, parents[0], children


@pytest.mark.slow
def test_a_parallel_sweep_survives_the_loss_of_a_worker(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = start_forecaster(
        "train", "-m", "launcher=joblib", *LONG_EPOCHS, "train.epochs=3", "seed=1,2,3",
        f"tracking.uri={uri}", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip

    def a_training_job():
        if not (tmp_path / "mlflow.db").exists() or not (tmp_path / "sweep").exists():
            return None  # the launcher creates the store first, then the sweep directory
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("forecaster")
        for run in client.search_runs([experiment.experiment_id]):
            if "mlflow.parentRunId" in run.data.tags and run.info.status == "RUNNING":
                if client.get_metric_history(run.info.run_id, "train_loss"):
                    return run
        return None

    victim = wait_for(a_training_job, "a job training", process=sweep)
    os.kill(int(victim.data.tags["forecaster.pid"]), signal.SIGKILL)  # the OOM killer's way
    status, output = finish(sweep)

    assert status == 0, output[-4000:]
    assert "its worker process" in output and "died" in output
    client, parent, children = sweep_runs(uri)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep_jobs"] == 3 and parent.data.metrics["sweep_failed_jobs"] == 1
    by_id = {c.info.run_id: c for c in children}
    assert len(by_id) == 3
    killed = by_id.pop(victim.info.run_id)
    assert killed.info.status == "FAILED"
    assert killed.data.tags["failure_reason"].startswith("orphaned: its process")
    assert [c.info.status for c in by_id.values()] == ["FINISHED", "FINISHED"]
    summary = pd.read_csv(client.download_artifacts(parent.info.run_id, "sweep/summary.csv"))
    assert sorted(summary["status"]) == ["FAILED", "FINISHED", "FINISHED"]


@pytest.mark.slow
def test_ctrl_c_stops_a_parallel_sweep_cleanly(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    checkpoints = tmp_path / "checkpoints"
    sweep = start_forecaster(
        "train", "-m", "launcher=joblib", *LONG_EPOCHS, "seed=1,2,3", f"tracking.uri={uri}",
        f"checkpoint_dir={checkpoints}", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: len(list(checkpoints.glob("*/latest"))) == 2, "2 jobs training", process=sweep)
    sweep.send_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the launching process
    status, output = finish(sweep)

    assert status == 128 + signal.SIGINT, output[-4000:]
    assert (
        "SIGINT received: the sweep stopped; of 3 jobs, 0 ended, 2 were stopped and 1 never "
        "started" in output
    )
    client, parent, children = sweep_runs(uri)
    assert len(children) == 2  # the third never started
    for child in children:
        assert child.info.status == "KILLED"
        assert child.data.tags["failure_reason"].startswith(
            "TrainingInterrupted: SIGINT received: training stopped in epoch"
        )
        assert f"resume={child.info.run_id}" in child.data.tags["failure_reason"]
    assert parent.info.status == "KILLED"
    assert parent.data.tags["failure_reason"] == (
        "the sweep stopped before all its jobs had run (SIGINT received; see the output of the "
        "command that launched it)"
    )
    summary = pd.read_csv(client.download_artifacts(parent.info.run_id, "sweep/summary.csv"))
    assert sorted(summary["status"]) == ["KILLED", "KILLED"]


@pytest.mark.slow
def test_a_sweep_directory_with_an_apostrophe(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep_dir = tmp_path / "it's a sweep"
    sweep = start_forecaster(
        "train", "-m", *TINY, "train.epochs=1", "seed=1", f"tracking.uri={uri}",
        f'hydra.sweep.dir="{sweep_dir}"', cwd=tmp_path,  # quoted, as Hydra's grammar wants
    )  # fmt: skip
    status, output = finish(sweep)
    assert status == 0, output[-4000:]
    _, parent, [child] = sweep_runs(uri)
    assert parent.data.tags["forecaster.sweep_dir"] == str(sweep_dir)
    assert parent.info.status == child.info.status == "FINISHED"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert mlflow.active_run() is None


@pytest.mark.slow
def test_processes_opening_a_fresh_store_at_once_build_it_once(tmp_path):
    """The lock itself: four processes open a store that does not exist yet, together."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = "import sys; from forecaster.tracking.store import open_store; open_store(sys.argv[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, uri],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "MLFLOW_LOGGING_LEVEL": "INFO"},  # the line counted below
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    assert sum("Creating initial MLflow database tables" in e for e in errors) == 1
    assert store._read_schema(tmp_path / "mlflow.db").current

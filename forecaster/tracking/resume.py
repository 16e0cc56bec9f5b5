"""Which run `python -m forecaster train resume=...` continues, and with what.

A run can be continued when it ended FAILED or KILLED (an orphan is ended FAILED when the store
is opened, so a killed process's run counts) and its checkpoint directory, recorded as a run
tag, still holds a checkpoint on this machine. It continues with its own logged config.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecaster.errors import ConfigError
from forecaster.tracking.store import (
    CHECKPOINT_TAG,
    HOST_TAG,
    PID_TAG,
    open_store,
    process_alive,
)
from forecaster.training import checkpoints

# MLflow's own rule for run ids: also keeps path characters out of artifact paths.
RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
CONFIG_ARTIFACT = "config.yaml"


@dataclass(frozen=True)
class Resumable:
    run_id: str
    run_name: str
    status: str
    checkpoint_dir: Path
    config_yaml: str  # the resolved config the run was started with


def check_run_id(run_id: str, key: str = "run_id") -> str:
    if not RUN_ID.match(run_id):
        raise ConfigError(
            f"{key}={run_id!r} is not an MLflow run id (letters, digits, '-' and '_', such as "
            "the 32 hex digits the MLflow UI shows). Fix: copy the id from the UI or from "
            "`mlflow runs list --experiment-id <id>`."
        )
    return run_id


def find_resumable(uri: str, experiment_name: str, which: str) -> Resumable:
    """The run `which` names (a run id, or `last`: the newest run that can be continued)."""
    client = open_store(uri)  # ends orphans first: a killed process's run becomes FAILED
    if which == "last":
        return _last(client, uri, experiment_name)
    check_run_id(which, "resume")
    try:
        run = client.get_run(which)
    except MlflowException:
        raise ConfigError(
            f"resume={which}: no such run in the tracking store {uri}. Fix: check the id, and "
            "that tracking.uri (or MLFLOW_TRACKING_URI) names the store the run is in."
        ) from None
    return _resumable(client, run, uri)


def _last(client: MlflowClient, uri: str, experiment_name: str) -> Resumable:
    experiment = client.get_experiment_by_name(experiment_name)
    runs = []
    if experiment is not None:
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string="attributes.status != 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=200,
        )
    for run in runs:
        directory = run.data.tags.get(CHECKPOINT_TAG)
        if run.info.status in ("FAILED", "KILLED") and directory and _has_checkpoint(directory):
            return _resumable(client, run, uri)
    raise ConfigError(
        f"resume=last: no run in experiment {experiment_name!r} of {uri} can be continued (one "
        "that ended FAILED or KILLED and has a checkpoint on this machine). Fix: start a new "
        "run, or name the run: resume=<run id>."
    )


def _resumable(client: MlflowClient, run, uri: str) -> Resumable:
    info, tags = run.info, run.data.tags
    name = f"run {info.run_id} ({info.run_name})"
    if info.status == "FINISHED":
        raise ConfigError(f"resume={info.run_id}: {name} FINISHED; there is nothing to continue.")
    if info.status == "RUNNING":
        where = (
            "on another machine" if process_alive(tags) is None else f"(pid {tags.get(PID_TAG)})"
        )
        raise ConfigError(
            f"resume={info.run_id}: {name} is still RUNNING {where}. Fix: stop that process "
            "first; a run whose process died is ended FAILED when the store is next opened."
        )
    directory = tags.get(CHECKPOINT_TAG)
    if not directory:
        raise ConfigError(
            f"resume={info.run_id}: {name} recorded no checkpoint directory (checkpoint_dir was "
            f"null, or it is not a training run). Fix: start it again: {tags.get('command', '')}"
        )
    if not _has_checkpoint(directory):
        host = tags.get(HOST_TAG, "its machine")
        raise ConfigError(
            f"resume={info.run_id}: {name} has no checkpoint in {directory} on this machine (it "
            f"ran on {host}; or it stopped before its first epoch ended). Fix: resume it on "
            f"{host}, or start it again: {tags.get('command', '')}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(info.run_id, CONFIG_ARTIFACT, tmp)
        except MlflowException:
            raise ConfigError(
                f"resume={info.run_id}: {name} has no {CONFIG_ARTIFACT} artifact to continue "
                f"with. Fix: start it again: {tags.get('command', '')}"
            ) from None
        config_yaml = Path(local).read_text()
    return Resumable(info.run_id, info.run_name, info.status, Path(directory), config_yaml)


def _has_checkpoint(directory: str) -> bool:
    return (Path(directory) / checkpoints.LATEST).is_file()

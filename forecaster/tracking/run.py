"""An MLflow run: created, filled and always ended (FINISHED, or FAILED / KILLED with the reason).

`TrackedRun` is a context manager around one run: it creates the experiment if needed, ends the
run FINISHED, or FAILED with the reason when the body raises (so no run is left open), and is a
training callback that logs `train_loss` / `val_loss` per epoch.
"""

from __future__ import annotations

import json
import logging
import tempfile
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import forecaster
from forecaster.data.io import PriceSeries
from forecaster.serving.states import StreamState
from forecaster.tracking import pyfunc
from forecaster.training.history import EpochLogs
from forecaster.training.loop import Trainer

log = logging.getLogger(__name__)

FAILURE_REASON_TAG = "failure_reason"
FINAL_STATES = "final_states"  # states/final_states.npz and .json
_MAX_TAG_LENGTH = 5000


def default_artifact_location(uri: str) -> str | None:
    """`mlartifacts/` beside a SQLite file; None (the server decides) for other stores."""
    prefix = "sqlite:///"  # then the path: absolute with one more "/", else relative to cwd
    if not uri.startswith(prefix):
        return None
    database = uri[len(prefix) :].split("?", 1)[0]
    if database in ("", ":memory:"):
        return None
    return (Path(database).resolve().parent / "mlartifacts").as_uri()


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"num_units": 64}} -> {"model.num_units": 64}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:
        # Another process created it between our look and our create (parallel jobs).
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


class TrackedRun:
    """One MLflow run. Use as `with TrackedRun(...) as run:`."""

    def __init__(
        self,
        uri: str,
        experiment_name: str,
        *,
        artifact_location: str | None = None,
        run_name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> None:
        self.uri = uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location or default_artifact_location(uri)
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None

    def __enter__(self) -> TrackedRun:
        mlflow.set_tracking_uri(self.uri)
        run = mlflow.start_run(
            experiment_id=experiment_id(
                MlflowClient(self.uri), self.experiment_name, self.artifact_location
            ),
            run_name=self.run_name,
            tags=self.tags,
            parent_run_id=self.parent_run_id,
        )
        self.run_id = run.info.run_id
        log.info(
            "MLflow run %s in experiment %r at %s", self.run_id, self.experiment_name, self.uri
        )
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))
            return False
        status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        try:
            reason = f"{exc_type.__name__}: {exc}"
            mlflow.set_tag(FAILURE_REASON_TAG, reason[:_MAX_TAG_LENGTH])
            mlflow.log_text("".join(traceback.format_exception(exc)), "failure.txt")
        finally:
            mlflow.end_run(RunStatus.to_string(status))
        return False  # re-raise: the caller decides what a failure means

    # -- what a run records ------------------------------------------------------------------
    def log_config(self, config: Mapping[str, Any], yaml_text: str) -> None:
        mlflow.log_params({k: "None" if v is None else v for k, v in flatten(config).items()})
        mlflow.log_text(yaml_text, "config.yaml")

    def log_data_source(self, series: PriceSeries) -> None:
        prices = series.prices
        mlflow.set_tags(
            {
                "data.file": str(series.path),
                "data.sha256": series.sha256,
                "data.price_column": series.price_column,
                "data.rows": str(len(prices)),
                "data.first_date": f"{prices.index[0]:%Y-%m-%d}",
                "data.last_date": f"{prices.index[-1]:%Y-%m-%d}",
                "data.dropped_rows": str(series.dropped_rows),
                "forecaster.version": forecaster.__version__,
            }
        )

    def on_epoch_end(self, trainer: Trainer, logs: EpochLogs) -> None:
        metrics = {"train_loss": logs.train_loss, "val_loss": logs.val_loss}
        # Without a validation part there is no val_loss to log (NaN).
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v}, step=logs.epoch)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags({name: text[:_MAX_TAG_LENGTH] for name, text in tags.items()})

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        mlflow.log_metrics(dict(metrics))

    def log_state(self, state: StreamState, description: dict) -> None:
        """`states/final_states.npz` (the state file format, `serving.states`) and a JSON that
        says which bar it belongs to and what the arrays are."""
        with tempfile.TemporaryDirectory() as tmp:
            path = state.save(Path(tmp) / f"{FINAL_STATES}.npz")
            with np.load(path) as arrays:
                shapes = {name: list(arrays[name].shape) for name in arrays.files}
            document = description | {"arrays": shapes}
            (Path(tmp) / f"{FINAL_STATES}.json").write_text(json.dumps(document, indent=2))
            mlflow.log_artifacts(tmp, "states")

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        mlflow.log_figure(figure, artifact_file)
        plt.close(figure)

    def log_model(self, export_dir: Path, input_example: pd.DataFrame) -> str:
        """Log an exported model directory as the pyfunc model `model`; return its URI."""
        return pyfunc.log_model(export_dir, input_example)

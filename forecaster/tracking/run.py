"""An MLflow run: created, filled and always ended (FINISHED, or FAILED / KILLED with the reason).

`TrackedRun` is a context manager around one run: it opens the store (`store.open_store`: checked,
created safely, orphans ended), creates the experiment if needed, ends the run FINISHED, or
FAILED / KILLED with the reason when the body raises (so no run is left open), and is a training
callback that logs `train_loss` / `val_loss` per epoch. Given `run_id`, it continues that run
(a resumed training) without logging again the epochs it already logged.
"""

from __future__ import annotations

import json
import logging
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.data.pandas_dataset import from_pandas
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import forecaster
from forecaster.data.io import PriceSeries
from forecaster.errors import ConfigError
from forecaster.serving.states import StreamState
from forecaster.tracking import pyfunc
from forecaster.tracking.store import (
    CHECKPOINT_TAG,
    FAILURE_REASON_TAG,
    check_artifact_location,
    open_store,
    process_tags,
    sqlite_path,
)
from forecaster.tracking.ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING, how_to_open, runs_view_url
from forecaster.training import checkpoints
from forecaster.training.history import EpochLogs
from forecaster.training.loop import Trainer

log = logging.getLogger(__name__)

PREVIOUS_FAILURE_TAG = "forecaster.previous_failure"  # why a resumed run had stopped
FINAL_STATES = "final_states"  # states/final_states.npz and .json
_MAX_TAG_LENGTH = 5000
DATASET_DIGEST_LENGTH = 16  # of the file's SHA-256: the UI shows the first 8; the store keeps 36


def default_artifact_location(uri: str) -> str | None:
    """`mlartifacts/` beside a SQLite file; None (the server decides) for other stores."""
    database = sqlite_path(uri)
    return None if database is None else (database.parent / "mlartifacts").as_uri()


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
    """The experiment `name`, created as a model-training experiment if it does not exist (an
    existing one without a kind, from an older version, is given that kind; a kind a user chose
    in the UI is kept)."""
    if not name.strip():
        raise ConfigError(
            f"tracking.experiment_name={name!r} is empty. Fix: name the experiment, e.g. "
            "tracking.experiment_name=forecaster (the default)."
        )
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ConfigError(
                f"tracking.experiment_name={name!r}: that experiment was deleted in this store. "
                f"Fix: restore it (mlflow experiments restore --experiment-id "
                f"{experiment.experiment_id}) or choose another tracking.experiment_name."
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)
        return experiment.experiment_id
    if artifact_location is not None:
        check_artifact_location(
            artifact_location, f"tracking.artifact_location={artifact_location!r}"
        )
    try:
        return client.create_experiment(
            name,
            artifact_location=artifact_location,
            tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING},
        )
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
        run_id: str | None = None,
    ) -> None:
        self.uri = uri
        self.experiment_name = experiment_name
        self.artifact_location = artifact_location or default_artifact_location(uri)
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.parent_run_id = parent_run_id
        self.run_id = run_id  # set: continue that run
        self.resumed = run_id is not None
        self.logged_epochs = 0  # epochs this run logged before it was resumed
        self.checkpoint_dir: Path | None = None
        self.experiment_id: str | None = None

    def __enter__(self) -> TrackedRun:
        client = open_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        if self.resumed:
            self._continue(client)
        else:
            run = mlflow.start_run(
                # A run started inside another (a backtest's fold inside the backtest) is its child.
                nested=mlflow.active_run() is not None,
                experiment_id=experiment_id(client, self.experiment_name, self.artifact_location),
                run_name=self.run_name,
                tags=self.tags | process_tags(),
                parent_run_id=self.parent_run_id,
            )
            self.run_id = run.info.run_id
        self.experiment_id = mlflow.active_run().info.experiment_id
        log.info(
            "MLflow run %s%s in experiment %r at %s",
            self.run_id,
            " (resumed)" if self.resumed else "",
            self.experiment_name,
            self.uri,
        )
        return self

    def _continue(self, client: MlflowClient) -> None:
        """Reopen the run (RUNNING again, this process's tags); keep why it had stopped."""
        previous = client.get_run(self.run_id)
        mlflow.start_run(run_id=self.run_id, tags=process_tags())
        reason = previous.data.tags.get(FAILURE_REASON_TAG)
        if reason is not None:
            mlflow.set_tag(PREVIOUS_FAILURE_TAG, reason)
            client.delete_tag(self.run_id, FAILURE_REASON_TAG)
        history = client.get_metric_history(self.run_id, "train_loss")
        self.logged_epochs = max((m.step for m in history), default=0)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None:
            mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))
            return False
        status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        try:
            reason = f"{exc_type.__name__}: {exc or 'Ctrl-C'}"
            latest = self.checkpoint_dir and self.checkpoint_dir / checkpoints.LATEST
            if latest and latest.exists():
                reason += f". Continue it with: python -m forecaster train resume={self.run_id}"
            mlflow.set_tag(FAILURE_REASON_TAG, reason[:_MAX_TAG_LENGTH])
            mlflow.log_text("".join(traceback.format_exception(exc)), "failure.txt")
        finally:
            mlflow.end_run(RunStatus.to_string(status))
        return False  # re-raise: the caller decides what a failure means

    # -- what a run records ------------------------------------------------------------------
    def log_config(self, config: Mapping[str, Any], yaml_text: str) -> None:
        mlflow.log_params({k: "None" if v is None else v for k, v in flatten(config).items()})
        mlflow.log_text(yaml_text, "config.yaml")

    def log_data_source(self, series: PriceSeries, context: str = "training") -> None:
        """The price file as tags, and as the run's MLflow dataset input (`context` says what the
        run did with it), so the runs table's Dataset column and the run page show it."""
        prices = series.prices
        frame = prices.rename(series.price_column).rename_axis(series.date_column).reset_index()
        dataset = from_pandas(
            frame,
            source=LocalArtifactDatasetSource(str(series.path)),
            name=series.path.name,
            digest=series.sha256[:DATASET_DIGEST_LENGTH],  # the file's, as in data.sha256
        )
        mlflow.log_input(dataset, context=context)
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

    def record_checkpoint_dir(self, directory: Path) -> None:
        """Where this run's training checkpoints are: what `resume` continues from."""
        self.checkpoint_dir = directory
        mlflow.set_tag(CHECKPOINT_TAG, str(directory))

    def on_epoch_end(self, trainer: Trainer, logs: EpochLogs) -> None:
        if logs.epoch <= self.logged_epochs:
            return  # a resumed run replays, bit for bit, an epoch it logged before it stopped
        metrics = {"train_loss": logs.train_loss, "val_loss": logs.val_loss}
        # Without a validation part there is no val_loss to log (NaN).
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v}, step=logs.epoch)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        mlflow.set_tags({name: text[:_MAX_TAG_LENGTH] for name, text in tags.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v}, step=step)  # no NaN

    def log_table_metrics(self, table: pd.DataFrame, prefix: str, names: Sequence[str]) -> None:
        """`<prefix>/<model>/<name>` for each row of `table` (one model per row, in its `model`
        column) and each of `names` that holds a finite value."""
        self.log_metrics(
            {
                f"{prefix}/{row['model']}/{name}": float(row[name])
                for _, row in table.iterrows()
                for name in names
                if np.isfinite(row[name])
            }
        )

    def log_params(self, params: Mapping[str, Any]) -> None:
        mlflow.log_params(dict(params))

    def set_description(self, markdown: str) -> None:
        """The run's description: the MLflow UI shows it at the top of the run's page."""
        mlflow.set_tag("mlflow.note.content", markdown)

    def log_text(self, text: str, artifact_file: str) -> None:
        mlflow.log_text(text, artifact_file)

    def log_frame(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """A table as `.csv` or `.parquet`, by the artifact's suffix."""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(artifact_file).name
            if path.suffix == ".parquet":
                frame.to_parquet(path, index=False)
            else:
                frame.to_csv(path, index=False)
            folder = str(Path(artifact_file).parent)
            mlflow.log_artifact(str(path), None if folder == "." else folder)

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

    def runs_table(self, metrics: list[str]) -> str:
        """A link to this experiment's runs table, newest first, with `metrics` as its first
        columns (those this run logged), and how to open it; logged at INFO."""
        logged = mlflow.get_run(self.run_id).data.metrics
        url = runs_view_url(
            self.uri, self.experiment_id, metrics=[m for m in metrics if m in logged]
        )
        opener = how_to_open(self.uri)
        log.info("runs table: %s%s", url, f" (after `{opener}`)" if opener else "")
        return url

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        mlflow.log_figure(figure, artifact_file)
        plt.close(figure)

    def log_model(self, export_dir: Path, input_example: pd.DataFrame) -> str:
        """Log an exported model directory as the pyfunc model `model`; return its URI."""
        return pyfunc.log_model(export_dir, input_example)

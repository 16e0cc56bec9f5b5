"""The one module that talks to MLflow.

`TrackedRun` is a context manager around one MLflow run: it creates the experiment if needed,
ends the run FINISHED, or FAILED with the reason when the body raises (so no run is left open),
and is itself a training callback that logs `train_loss` / `val_loss` per epoch.
`PyfuncForecaster` wraps an exported model (`forecaster.serving`) as an MLflow pyfunc model.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import tempfile
import traceback
import warnings
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
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

import forecaster
from forecaster import plots, provenance
from forecaster import states as state_arrays
from forecaster.data import PriceSeries
from forecaster.model import Seq2SeqModel
from forecaster.online import StreamState
from forecaster.serving import (
    ExportedForecaster,
    Preprocessing,
    export_model,
    predict_frame,
)
from forecaster.states import NumpyStates
from forecaster.training import EpochLogs

log = logging.getLogger(__name__)

FAILURE_REASON_TAG = "failure_reason"
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


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
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
        experiment_id = _experiment_id(
            MlflowClient(self.uri), self.experiment_name, self.artifact_location
        )
        run = mlflow.start_run(
            experiment_id=experiment_id,
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

    def on_epoch_end(self, logs: EpochLogs) -> None:
        mlflow.log_metrics(
            {"train_loss": logs.train_loss, "val_loss": logs.val_loss}, step=logs.epoch
        )

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        mlflow.log_metrics(dict(metrics))

    def log_states(
        self, encoder_state: NumpyStates, decoder_state: NumpyStates, description: dict
    ) -> None:
        """`states/final_states.npz`: encoder_{c,h}_{k} and decoder_{c,h}_{k}, plus a JSON."""
        arrays = state_arrays.to_arrays("encoder", encoder_state)
        arrays |= state_arrays.to_arrays("decoder", decoder_state)
        description = description | {
            "arrays": {name: list(a.shape) for name, a in arrays.items()},
        }
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "final_states.npz", **arrays)
            (Path(tmp) / "final_states.json").write_text(json.dumps(description, indent=2))
            mlflow.log_artifacts(tmp, "states")

    def log_figure(self, figure: Figure, artifact_file: str) -> None:
        mlflow.log_figure(figure, artifact_file)
        plt.close(figure)

    def log_model(
        self, model: Seq2SeqModel, preprocessing: Preprocessing, input_example: pd.DataFrame
    ) -> str:
        """Export the model (TF1 SavedModel) and log it as the pyfunc model `model`.

        The input example is run through the logged model, which checks it loads and serves,
        and gives the model its signature. Returns the model URI.
        """
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            # The output's `step` column is an integer on purpose; MLflow hints otherwise.
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            export_dir = export_model(model, preprocessing, Path(tmp) / "exported_model")
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=PyfuncForecaster(),
                artifacts={"exported_model": str(export_dir)},
                # The package travels with the model: it loads where forecaster isn't installed.
                code_paths=[str(Path(forecaster.__file__).parent)],
                input_example=input_example,
                signature=_signature(preprocessing),
                # Declared, not inferred: inference re-imports the model in a subprocess.
                pip_requirements=_serving_requirements(),
            )
        return info.model_uri


# -- sweeps: one parent run, a child run per job ---------------------------------------------------

SWEEP_DIR_TAG = "forecaster.sweep_dir"
SWEEP_OVERRIDES_TAG = "sweep.overrides"  # JSON list of the sweep command's overrides
SUMMARY_COLUMNS = (
    "best_val_loss",
    "test_rmse",
    "naive_test_rmse",
    "test_rmse_skill",
    "test_mase",
    "test_directional_accuracy",
)


def start_sweep(
    uri: str,
    experiment_name: str,
    *,
    sweep_dir: str,
    overrides: list[str],
    artifact_location: str | None = None,
) -> str:
    """Create a sweep's parent run, left RUNNING until `finish_sweep`; return its id.

    Called in the launching process before any job starts, which also creates a fresh SQLite
    store's schema and the experiment before parallel jobs could race to.
    """
    client = MlflowClient(uri)
    experiment_id = _experiment_id(
        client, experiment_name, artifact_location or default_artifact_location(uri)
    )
    run = client.create_run(
        experiment_id,
        run_name=f"sweep {' '.join(provenance.shown_overrides(overrides))}".strip()[:250],
        tags={SWEEP_DIR_TAG: sweep_dir, SWEEP_OVERRIDES_TAG: json.dumps(overrides)},
    )
    client.log_text(run.info.run_id, "\n".join(overrides) + "\n", "sweep/overrides.txt")
    log.info("sweep parent run %s (%s)", run.info.run_id, sweep_dir)
    return run.info.run_id


def find_sweep(uri: str, experiment_name: str, sweep_dir: str) -> tuple[str, list[str]] | None:
    """The parent run of the sweep writing to `sweep_dir`, and the sweep's overrides (how a job,
    in any process or on any machine that reaches the tracking server, finds its parent)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{SWEEP_DIR_TAG}` = '{sweep_dir}'",
        max_results=1,
    )
    if not runs:
        return None
    return runs[0].info.run_id, json.loads(runs[0].data.tags.get(SWEEP_OVERRIDES_TAG, "[]"))


def finish_sweep(uri: str, parent_run_id: str, objective: str = "best_val_loss") -> pd.DataFrame:
    """Summarise the children on the parent (table, plot, best child) and end it."""
    client = MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=10_000,
    )
    summary = pd.DataFrame(
        [
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                **{name: run.data.metrics.get(name, np.nan) for name in SUMMARY_COLUMNS},
                FAILURE_REASON_TAG: run.data.tags.get(FAILURE_REASON_TAG, ""),
            }
            for run in children
        ],
        columns=["run_id", "run_name", "status", *SUMMARY_COLUMNS, FAILURE_REASON_TAG],
    ).sort_values(objective, na_position="last", ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        summary.to_csv(Path(tmp) / "summary.csv", index=False)
        client.log_artifacts(parent_run_id, tmp, "sweep")
    finished = summary[summary["status"] == "FINISHED"].dropna(subset=[objective])
    if not summary.empty:
        figure = plots.sweep_figure(summary, objective)
        client.log_figure(parent_run_id, figure, "sweep/summary.png")
        plt.close(figure)
    client.log_metric(parent_run_id, "sweep_jobs", len(summary))
    client.log_metric(
        parent_run_id, "sweep_failed_jobs", int((summary["status"] != "FINISHED").sum())
    )
    if finished.empty:
        client.set_terminated(parent_run_id, "FAILED")
        return summary
    best = finished.iloc[0]
    client.set_tag(parent_run_id, "best_run_id", best["run_id"])
    client.set_tag(parent_run_id, "best_run_name", best["run_name"])
    for name in SUMMARY_COLUMNS:
        if np.isfinite(best[name]):
            client.log_metric(parent_run_id, name, float(best[name]))
    client.set_terminated(parent_run_id, "FINISHED")
    return summary


def connect(uri: str) -> None:
    """Point this process at a tracking store (for loading models and states)."""
    mlflow.set_tracking_uri(uri)


def load_model(model_uri: str) -> ExportedForecaster:
    """Download a logged model (`runs:/<run_id>/model`, `models:/...`) and load it."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return ExportedForecaster(local / "artifacts" / "exported_model")


def load_final_states(run_id: str) -> tuple[StreamState, dict]:
    """The run's `states/final_states.npz` as a stream state, and its description."""
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="states"))
    description = json.loads((local / "final_states.json").read_text())
    window = description["window"]
    with np.load(local / "final_states.npz") as arrays:
        encoder_state = state_arrays.from_arrays(arrays, "encoder")
    state = StreamState(
        encoder_state=encoder_state,
        last_price=float(window["origin_price"]),
        last_date=pd.Timestamp(window["origin_date"]),
    )
    return state, description


def _signature(preprocessing: Preprocessing) -> ModelSignature:
    """Prices as doubles under the training price column; dates optional, as datetimes."""
    return ModelSignature(
        inputs=Schema(
            [
                ColSpec("datetime", preprocessing.date_column, required=False),
                ColSpec("double", preprocessing.price_column),
            ]
        ),
        outputs=Schema(
            [
                ColSpec("long", "step"),
                ColSpec("datetime", "date", required=False),
                ColSpec("double", "forecast"),
                ColSpec(Array("double"), "state"),
            ]
        ),
        # Optional: a packed state [c_0, h_0, c_1, h_1, ...] to continue from (stateful serving).
        params=ParamSchema([ParamSpec("initial_state", "double", [], shape=(-1,))]),
    )


def _serving_requirements() -> list[str]:
    """What the logged model needs to load and predict, pinned to the versions that trained it."""
    packages = ("tensorflow-cpu", "numpy", "pandas", "mlflow")
    pins = []
    for name in packages:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


class PyfuncForecaster(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: a DataFrame of recent prices in, the next `horizon` prices out.

    Input: the training price column (e.g. `Adj Close`), oldest first; optionally the date
    column, as datetimes. Params: optional `initial_state`. See `serving.predict_frame`.
    Output: columns `step`, `date` (next business days, when dates were given), `forecast`,
    `state` (to pass as `initial_state` next time).
    """

    def load_context(self, context) -> None:
        self.forecaster = ExportedForecaster(context.artifacts["exported_model"])

    def __getstate__(self) -> dict:
        # MLflow loads the model to check the input example, then pickles this object:
        # the loaded Session is rebuilt by `load_context`, never pickled.
        return {k: v for k, v in self.__dict__.items() if k != "forecaster"}

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        initial_state = (params or {}).get("initial_state")
        if initial_state is not None and len(initial_state) == 0:
            initial_state = None  # the schema's default: no state given
        return predict_frame(self.forecaster, model_input, initial_state)

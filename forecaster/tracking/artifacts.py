"""Reading back what runs logged: their models and their final LSTM states."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from forecaster.errors import ConfigError
from forecaster.serving.exported import ExportedForecaster
from forecaster.serving.states import StreamState
from forecaster.tracking.pyfunc import EXPORTED_MODEL
from forecaster.tracking.run import FINAL_STATES
from forecaster.tracking.store import open_store


def connect(uri: str) -> None:
    """Point this process at a tracking store (for loading models and states), checked first."""
    open_store(uri)
    mlflow.set_tracking_uri(uri)


def load_model(model_uri: str, key: str = "model_uri") -> ExportedForecaster:
    """Download a logged model (`runs:/<run_id>/model`, `models:/...`) and load it."""
    local = _download(key, model_uri, artifact_uri=model_uri)
    if not (local / "artifacts" / EXPORTED_MODEL).is_dir():
        raise ConfigError(
            f"{key}={model_uri}: that is not a model logged by `python -m forecaster train` "
            f"(no {EXPORTED_MODEL} in it). Fix: use runs:/<run id>/model of a training run."
        )
    return ExportedForecaster(local / "artifacts" / EXPORTED_MODEL)


def load_final_states(run_id: str) -> tuple[StreamState, dict]:
    """The run's `states/final_states.npz` as a stream state, and its description."""
    local = _download("run_id", run_id, run_id=run_id, artifact_path="states")
    description = json.loads((local / f"{FINAL_STATES}.json").read_text())
    return StreamState.load(local / f"{FINAL_STATES}.npz"), description


def _download(key: str, value: str, **where: str) -> Path:
    try:
        return Path(mlflow.artifacts.download_artifacts(**where))
    except MlflowException as error:
        raise ConfigError(
            f"{key}={value}: {error.message} in the tracking store {mlflow.get_tracking_uri()}. "
            "Fix: check it, and that tracking.uri (or MLFLOW_TRACKING_URI) names the store "
            "that holds it."
        ) from None

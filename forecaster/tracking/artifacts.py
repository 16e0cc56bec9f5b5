"""Reading back what runs logged: their models and their final LSTM states."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from forecaster.serving.exported import ExportedForecaster
from forecaster.serving.states import StreamState
from forecaster.tracking.pyfunc import EXPORTED_MODEL
from forecaster.tracking.run import FINAL_STATES


def connect(uri: str) -> None:
    """Point this process at a tracking store (for loading models and states)."""
    mlflow.set_tracking_uri(uri)


def load_model(model_uri: str) -> ExportedForecaster:
    """Download a logged model (`runs:/<run_id>/model`, `models:/...`) and load it."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return ExportedForecaster(local / "artifacts" / EXPORTED_MODEL)


def load_final_states(run_id: str) -> tuple[StreamState, dict]:
    """The run's `states/final_states.npz` as a stream state, and its description."""
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="states"))
    description = json.loads((local / f"{FINAL_STATES}.json").read_text())
    return StreamState.load(local / f"{FINAL_STATES}.npz"), description

"""The logged model: an exported seq2seq directory wrapped as an MLflow pyfunc model.

MLflow's TensorFlow flavour cannot log a TF1 graph, so the exported SavedModel travels as an
artifact of a `PythonModel` that delegates to `forecaster.serving`.
"""

from __future__ import annotations

import importlib.metadata
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array

import forecaster
from forecaster.models.seq2seq.export import Preprocessing
from forecaster.serving.exported import TICKER_COLUMN, ExportedForecaster, predict_frame

MODEL_NAME = "model"  # runs:/<run_id>/model
EXPORTED_MODEL = "exported_model"  # the artifact that holds the exported directory


def log_model(export_dir: Path, input_example: pd.DataFrame) -> str:
    """Log `export_dir` as the active run's pyfunc model `model`; return its model URI.

    The input example is run through the logged model, which checks it loads and serves, and
    gives the model its signature.
    """
    preprocessing = Preprocessing.load(export_dir)
    with warnings.catch_warnings():
        # The output's `step` column is an integer on purpose; MLflow hints otherwise.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=PyfuncForecaster(),
            artifacts={EXPORTED_MODEL: str(export_dir)},
            # The package travels with the model: it loads where forecaster isn't installed.
            code_paths=[str(Path(forecaster.__file__).parent)],
            input_example=input_example,
            signature=_signature(preprocessing),
            # Declared, not inferred: inference re-imports the model in a subprocess.
            pip_requirements=_serving_requirements(),
        )
    return info.model_uri


def _signature(preprocessing: Preprocessing) -> ModelSignature:
    """Prices as doubles under the training price column; dates optional, as datetimes; for a
    global model, an optional `ticker` column naming the series."""
    columns = [
        ColSpec("datetime", preprocessing.date_column, required=False),
        ColSpec("double", preprocessing.price_column),
    ]
    if preprocessing.tickers is not None:
        columns.append(ColSpec("string", TICKER_COLUMN, required=False))
    return ModelSignature(
        inputs=Schema(columns),
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
    Output: columns `step`, `date` (spaced as the input's dates, when given), `forecast`,
    `state` (to pass as `initial_state` next time).
    """

    def load_context(self, context) -> None:
        self.forecaster = ExportedForecaster(context.artifacts[EXPORTED_MODEL])

    def __getstate__(self) -> dict:
        # MLflow loads the model to check the input example, then pickles this object:
        # the loaded Session is rebuilt by `load_context`, never pickled.
        return {k: v for k, v in self.__dict__.items() if k != "forecaster"}

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        initial_state = (params or {}).get("initial_state")
        if initial_state is not None and len(initial_state) == 0:
            initial_state = None  # the schema's default: no state given
        return predict_frame(self.forecaster, model_input, initial_state)

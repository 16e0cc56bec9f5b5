"""The logged model: an exported seq2seq directory served as an MLflow pyfunc model.

MLflow's TensorFlow flavour cannot log a TF1 graph, so the exported SavedModel travels as an
artifact of a `PythonModel` that delegates to `forecaster.serving`. The model is logged as code
(MLflow's models-from-code): `pyfunc_model.py` is copied into the model and run at load time, so
nothing is pickled, and a model does not depend on the cloudpickle version that logged it.

The serving contract, the same from Python (`mlflow.pyfunc.load_model`) and over REST
(`mlflow models serve`):
- input: the training price column, oldest first; optionally the date column, as datetimes;
- params: `initial_state` (a packed state to continue from) and `return_state` (false: a table of
  `step`, `date`, `forecast`; true: `{"forecast": [rows], "state": [...]}`, the state once);
- bad input raises an `MlflowException` with `INVALID_PARAMETER_VALUE` and the project's message
  only, which the scoring server answers as HTTP 400 without a stack trace.
"""

from __future__ import annotations

import importlib.metadata
import json
import warnings
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

import forecaster
from forecaster.errors import ForecasterError
from forecaster.evaluation.probabilistic import quantile_column
from forecaster.models.seq2seq.export import Preprocessing
from forecaster.serving.exported import TICKER_COLUMN, ExportedForecaster, forecast_frame

MODEL_NAME = "model"  # runs:/<run_id>/model
EXPORTED_MODEL = "exported_model"  # the artifact that holds the exported directory
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")  # what MLflow runs to load the model


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
            python_model=str(MODEL_CODE),
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
    levels = preprocessing.quantile_levels or ()
    return ModelSignature(
        inputs=Schema(columns),
        outputs=Schema(
            [
                ColSpec("long", "step"),
                ColSpec("datetime", "date", required=False),
                ColSpec("double", "forecast"),
                # a distributional model's quantiles of the price: q0.05 ... q0.95
                *(ColSpec("double", quantile_column(q)) for q in levels),
            ]
        ),
        params=ParamSchema(
            [
                # A packed state [c_0, h_0, c_1, h_1, ...] to continue from (stateful serving).
                ParamSpec("initial_state", "double", [], shape=(-1,)),
                # Also return the state after the last input bar, once, to send next time.
                ParamSpec("return_state", "boolean", False),
            ]
        ),
    )


# What a logged model needs to load and predict; pinned to the versions that trained it. Logged
# as code, so cloudpickle (which the Ray extra caps below 3) is not among them.
SERVING_PACKAGES = ("tensorflow-cpu", "numpy", "pandas", "mlflow")


def _serving_requirements() -> list[str]:
    """`SERVING_PACKAGES` pinned to the installed versions."""
    pins = []
    for name in SERVING_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pins.append(name)
    return pins


class PyfuncForecaster(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: a DataFrame of recent prices in, the next `horizon` prices out.

    Input: the training price column (e.g. `Adj Close`), oldest first; optionally the date
    column, as datetimes. Params: `initial_state`, `return_state`. See `serving.forecast_frame`.
    Output: columns `step`, `date` (spaced as the input's dates, when given), `forecast`, and for
    a distributional model its quantiles `q0.05` ... `q0.95`; with `return_state`,
    `{"forecast": <those rows as records>, "state": <packed state>}`.
    """

    def load_context(self, context) -> None:
        self.forecaster = ExportedForecaster(context.artifacts[EXPORTED_MODEL])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame | dict:
        params = params or {}
        initial_state = params.get("initial_state")
        if initial_state is not None and len(initial_state) == 0:
            initial_state = None  # the schema's default: no state given
        try:
            forecast = forecast_frame(self.forecaster, model_input, initial_state)
        except ForecasterError as error:
            # The scoring server answers INVALID_PARAMETER_VALUE with HTTP 400 and this message;
            # `from None`: the client needs the message, not our stack.
            raise ServingInputError(str(error)) from None
        frame = forecast.to_frame()
        if not params.get("return_state"):
            return frame
        if "date" in frame:  # ISO 8601, as MLflow writes the dates of a plain table
            frame["date"] = [date.isoformat() for date in frame["date"]]
        return {"forecast": frame.to_dict("records"), "state": forecast.packed_state()}


class ServingInputError(MlflowException):
    """Bad input to the served model: HTTP 400 with the project's message alone.

    The scoring server prefixes a prediction error's message with the whole request's data
    ("Failed to predict data '<up to 60 rows>'"); the client sent those rows and needs only what
    is wrong with them and the fix, so this error serializes its own message.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)
        self.reason = message

    def serialize_as_json(self) -> str:
        return json.dumps({"error_code": self.error_code, "message": self.reason})

"""What MLflow runs to load a logged forecaster model (models-from-code, see `pyfunc`).

MLflow copies this file into every logged model and executes it at load time; the model's
weights and scaler come from its `exported_model` artifact, in `PyfuncForecaster.load_context`.
"""

from mlflow.models import set_model

from forecaster.tracking.pyfunc import PyfuncForecaster

set_model(PyfuncForecaster())

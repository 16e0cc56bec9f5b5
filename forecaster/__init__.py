"""forecaster: multi-step price forecasting with an explicit-state seq2seq LSTM.

The package is layered; each subpackage imports only from those before it:
data -> training -> models -> evaluation -> serving -> tracking -> cli.
"""

import logging
import os

# TensorFlow's C++ log: hide INFO and WARNING lines (e.g. BlockLSTM's note on odd batch sizes,
# repeated on every call) unless the user asked for them. Must be set before TF is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# MLflow's download progress bars flood logs of non-interactive runs and sweeps.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
# TensorFlow's Python logger: the tf.compat.v1 API we use on purpose warns of deprecation on
# every call, and SavedModel loading logs at INFO. Errors still show.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

__version__ = "0.1.0"

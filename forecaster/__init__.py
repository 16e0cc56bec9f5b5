"""forecaster: multi-step price forecasting with an explicit-state seq2seq LSTM."""

from pathlib import Path

__version__ = "0.1.0"

# The repository root: bundled data, conf/ and experiments/ live beside the package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

"""The tracking layer: the one subpackage that talks to MLflow (runs, sweeps, the logged pyfunc
model, and reading back what runs logged)."""

from forecaster.tracking.artifacts import connect, load_final_states, load_model
from forecaster.tracking.run import TrackedRun

__all__ = ["TrackedRun", "connect", "load_final_states", "load_model"]

"""The evaluation layer: metrics in price space, scoring a forecaster against the random walk
on the same origins, and the figures a run logs."""

from forecaster.evaluation.evaluate import Evaluation, evaluate
from forecaster.evaluation.metrics import METRIC_NAMES, forecast_metrics, mase_scale

__all__ = ["METRIC_NAMES", "Evaluation", "evaluate", "forecast_metrics", "mase_scale"]

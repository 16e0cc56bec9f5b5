"""A model fitted on a whole panel, scored on every series' test part beside the baselines.

Each series is evaluated as a single series is (`evaluate`): its test origins after the panel's
cut, the model and every baseline (fitted on that series' training part alone) on the same
origins. The summary over series is what a panel run reports: the geometric-mean MAE relative to
the random walk, how many series are worse than it by more than `WORSE_MARGIN`, the mean
directional accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from forecaster.data.panel import Panel, PanelSplit
from forecaster.evaluation.evaluate import evaluate
from forecaster.evaluation.panel_backtest import WORSE_MARGIN
from forecaster.models.base import Forecaster

SUMMARY_METRICS = ("gmean_mae_vs_naive", "worse_than_naive", "directional_accuracy")


def score_panel(
    model_of: Callable[[str], Forecaster],
    panel: Panel,
    split: PanelSplit,
    baselines: Callable[[], Mapping[str, Forecaster]],
    shrinkage_of: Callable[[str], float] | None = None,
) -> pd.DataFrame:
    """One row per (ticker, model): `model_of(ticker)` (the fitted model seen as one series'
    forecaster) and fresh `baselines()` on that series' test origins, with the MAE relative to
    the random walk's and, for the model, its shrinkage factor toward the random walk."""
    rows = []
    for ticker in panel.tickers:
        prices = panel.prices(ticker)
        evaluation = evaluate(model_of(ticker), prices, split.of(prices), dict(baselines()))
        naive_mae = evaluation.naive_metrics["mae"]
        scored = {"model": evaluation.metrics, **evaluation.baseline_metrics}
        for name, metrics in scored.items():
            shrinkage = shrinkage_of(ticker) if shrinkage_of and name == "model" else np.nan
            rows.append(
                {
                    "ticker": ticker,
                    "model": name,
                    "origins": len(evaluation.forecast.origins),
                    "mae_vs_naive": metrics["mae"] / naive_mae,
                    "shrinkage": shrinkage,
                    **metrics,
                }
            )
    return pd.DataFrame(rows)


def summarise_panel(table: pd.DataFrame) -> pd.DataFrame:
    """Per model over the series of a `score_panel` table: the geometric-mean test MAE relative
    to the random walk, the series it is worse than the random walk on by more than
    `WORSE_MARGIN`, the worst series, and the mean directional accuracy."""
    rows = []
    for name, group in table.groupby("model", sort=False):
        ratio = group["mae_vs_naive"].to_numpy(dtype=np.float64)
        rows.append(
            {
                "model": name,
                "gmean_mae_vs_naive": float(np.exp(np.mean(np.log(ratio)))),
                "worse_than_naive": int(np.sum(ratio > 1 + WORSE_MARGIN)),
                "worst_mae_vs_naive": float(ratio.max()),
                "worst_series": group["ticker"].iloc[int(np.argmax(ratio))],
                "directional_accuracy": float(group["directional_accuracy"].mean()),
            }
        )
    return pd.DataFrame(rows)


def summary_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """The summary as run metrics: `panel_test_<metric>` for the model,
    `panel_<baseline>_test_<metric>` for each baseline."""
    metrics = {}
    for _, row in summary.iterrows():
        prefix = "panel_" if row["model"] == "model" else f"panel_{row['model']}_"
        for name in SUMMARY_METRICS:
            metrics[f"{prefix}test_{name}"] = float(row[name])
    return metrics

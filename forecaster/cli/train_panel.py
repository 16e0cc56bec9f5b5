"""`python -m forecaster train data=panel`: one global seq2seq over every series of a panel.

The panel is cut at one calendar split (`window.val_fraction`, `window.test_fraction` of the
panel's calendar), the model trained on every series' training windows, early-stopped on all
their validation windows, then scored on each series' test part against the random walk and
`train.baselines` (each fitted on that series alone) on the same origins. One MLflow run: the
learning curves, the summary over series as metrics (`panel_test_gmean_mae_vs_naive`, ...), the
per-series table, and the model, which forecasts any trained ticker and new ones cold
(`predict`, the pyfunc model with a `ticker` column).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from forecaster.cli import config
from forecaster.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.api import Forecaster
    from forecaster.data.panel import Panel
    from forecaster.tracking import TrackedRun
    from forecaster.training.stopping import StopRequest

log = logging.getLogger(__name__)


def panel_metric_names(baselines: list[str]) -> list[str]:
    """What a panel training run logs, besides the learning curves."""
    names = ["model", *baselines]
    return [
        "best_val_loss",
        "best_epoch",
        *(
            f"panel_{'' if n == 'model' else n + '_'}test_{m}"
            for n in names
            for m in ("gmean_mae_vs_naive", "worse_than_naive", "directional_accuracy")
        ),
    ]


def train_panel(
    settings: config.TrainAppConf,
    model: Forecaster,
    run: TrackedRun,
    checkpoint_dir: Path | None = None,
    stop_request: StopRequest | None = None,
    resume: bool = False,
) -> dict[str, float]:
    """Fit `model` (the API's estimator, configured from `settings`) on `settings.data`'s panel,
    log it and its per-series scores to `run` (checkpointing into `checkpoint_dir`, stoppable by
    `stop_request`, continuing the run's checkpoint when `resume`); its metrics."""
    from forecaster.evaluation.plots import learning_curve_figure

    if settings.objective.metric not in panel_metric_names(settings.train.baselines):
        raise ConfigError(
            f"objective.metric={settings.objective.metric!r} is not a metric a panel training "
            f"run logs; choose one of {panel_metric_names(settings.train.baselines)}."
        )
    if checkpoint_dir is not None:
        run.record_checkpoint_dir(checkpoint_dir)
    panel = settings.data.load_panel()
    log_panel_source(run, panel)
    model.fit(
        panel,
        callbacks=[run],
        checkpoint_dir=checkpoint_dir,
        stop_request=stop_request,
        resume=resume,
    )
    summary, metrics = model.test_summary_, model.metrics_
    run.log_metrics(metrics)
    run.log_frame(model.test_per_series_, "panel/test_per_series.csv")
    run.log_frame(summary, "panel/test_summary.csv")
    run.set_description(markdown(summary, len(panel), model.split_))
    run.log_figure(learning_curve_figure(model.history_), "plots/learning_curve.png")
    if settings.model.covariates:
        # The exported model and the pyfunc read prices only: a model that reads covariates
        # is evaluated and tracked, not exported (GlobalSeq2SeqForecaster.export says so).
        reason = (
            f"model.covariates={list(settings.model.covariates)}: the model is not exported "
            "(serving reads prices only); train with model.covariates=[] to serve it"
        )
        log.warning("%s", reason)
        run.set_tags({"model.exported": "false", "model.not_exported_because": reason})
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run.log_model(model.export(Path(tmp) / "exported_model"), model.input_example())
    shown = summary.round(4).to_string(index=False)
    print(
        f"{len(panel)} series, test from {model.split_.val_end:%Y-%m-%d}\n{shown}\n"
        f"MLflow run {run.run_id}"
    )
    return metrics


def markdown(summary: pd.DataFrame, series: int, split) -> str:
    lines = [
        f"**Global model over {series} series**: test from {split.val_end:%Y-%m-%d}; MAE "
        "relative to the random walk on each series' test origins, geometric mean over series.",
        "",
        "| model | MAE / naive (gmean) | worse than naive by >2 % | worst | directional accuracy |",
        "| --- | --- | --- | --- | --- |",
    ]
    for _, row in summary.iterrows():
        lines.append(
            f"| {row['model']} | {row['gmean_mae_vs_naive']:.4f} | {row['worse_than_naive']} | "
            f"{row['worst_mae_vs_naive']:.3f} ({row['worst_series']}) | "
            f"{row['directional_accuracy']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def log_panel_source(run: TrackedRun, panel: Panel) -> None:
    """Tags naming the panel's files (one named, many counted with one digest of their digests)
    and `data/sources.csv` listing every ticker's file, digest, rows and dates."""
    sources = panel.sources()
    files = sources.drop_duplicates("file").sort_values("file")
    combined = hashlib.sha256(" ".join(files["sha256"]).encode()).hexdigest()
    run.set_tags(
        {
            "data.files": files["file"].iloc[0] if len(files) == 1 else f"{len(files)} files",
            "data.sha256": files["sha256"].iloc[0] if len(files) == 1 else combined,
            "data.tickers": str(len(panel)),
            "data.first_date": f"{panel.calendar[0]:%Y-%m-%d}",
            "data.last_date": f"{panel.calendar[-1]:%Y-%m-%d}",
        }
    )
    run.log_frame(sources, "data/sources.csv")

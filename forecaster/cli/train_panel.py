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

import numpy as np

from forecaster.cli import config
from forecaster.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.data.panel import Panel
    from forecaster.tracking import TrackedRun
    from forecaster.training.stopping import StopRequest

log = logging.getLogger(__name__)

WORSE_MARGIN = 0.02  # as in the panel backtest: "worse than naive" is a ratio above 1.02


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
    run: TrackedRun,
    checkpoint_dir: Path | None = None,
    stop_request: StopRequest | None = None,
    resume: bool = False,
) -> dict[str, float]:
    """Train the global model on `settings.data`'s panel, score it per series, log to `run`
    (checkpointing into `checkpoint_dir`, stoppable by `stop_request`, continuing the run's
    checkpoint when `resume`), and return its metrics."""
    import pandas as pd

    from forecaster.api import baseline
    from forecaster.data.panel import panel_split
    from forecaster.evaluation import evaluate
    from forecaster.evaluation.plots import learning_curve_figure
    from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster

    if settings.objective.metric not in panel_metric_names(settings.train.baselines):
        raise ConfigError(
            f"objective.metric={settings.objective.metric!r} is not a metric a panel training "
            f"run logs; choose one of {panel_metric_names(settings.train.baselines)}."
        )
    data, window = settings.data, settings.window
    if checkpoint_dir is not None:
        run.record_checkpoint_dir(checkpoint_dir)
    panel = data.load_panel()
    log_panel_source(run, panel)
    split = panel_split(panel, window, data.target)
    log.info(
        "%d series; train to %s, validation to %s, test after",
        len(panel),
        f"{split.train_end:%Y-%m-%d}",
        f"{split.val_end:%Y-%m-%d}",
    )
    with GlobalSeq2SeqForecaster(
        window=window,
        model=settings.model,
        train=settings.train,
        target=data.target,
        seed=settings.seed,
        callbacks=[run],
        checkpoint_dir=checkpoint_dir,
        stop_request=stop_request,
    ) as model:
        model.fit_panel(panel, split, resume=resume)
        rows = []
        for ticker in panel.tickers:
            prices = panel.prices(ticker)
            baselines = {
                name: baseline(name, window, settings.model.quantiles, settings.seed)
                for name in settings.train.baselines
            }
            evaluation = evaluate(model.for_series(ticker), prices, split.of(prices), baselines)
            naive_mae = evaluation.naive_metrics["mae"]
            scored = {"model": evaluation.metrics, **evaluation.baseline_metrics}
            for name, metrics in scored.items():
                rows.append(
                    {
                        "ticker": ticker,
                        "model": name,
                        "origins": len(evaluation.forecast.origins),
                        "mae_vs_naive": metrics["mae"] / naive_mae,
                        "shrinkage": model.shrinkage_of(ticker) if name == "model" else np.nan,
                        **metrics,
                    }
                )
        table = pd.DataFrame(rows)
        summary = summarise(table)
        history = model.history_
        metrics = {"best_val_loss": history.best_val_loss, "best_epoch": history.best_epoch}
        for _, row in summary.iterrows():
            prefix = "panel_" if row["model"] == "model" else f"panel_{row['model']}_"
            for name in ("gmean_mae_vs_naive", "worse_than_naive", "directional_accuracy"):
                metrics[f"{prefix}test_{name}"] = float(row[name])
        run.log_metrics(metrics)
        run.log_frame(table, "panel/test_per_series.csv")
        run.log_frame(summary, "panel/test_summary.csv")
        run.set_description(markdown(summary, len(panel), split))
        run.log_figure(learning_curve_figure(history), "plots/learning_curve.png")
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
            log_exported(run, model, panel, window)
    shown = summary.round(4).to_string(index=False)
    print(
        f"{len(panel)} series, test from {split.val_end:%Y-%m-%d}\n{shown}\nMLflow run {run.run_id}"
    )
    return metrics


def log_exported(run: TrackedRun, model, panel: Panel, window) -> None:
    """The fitted global model, exported, as the run's MLflow model (with an input example)."""
    with tempfile.TemporaryDirectory() as tmp:
        first = panel.series[0]
        exported = model.export(
            Path(tmp) / "exported_model",
            price_column=first.price_column,
            date_column=first.date_column,
        )
        recent = first.prices.iloc[-(window.lookback + 1) :]
        example = recent.rename(first.price_column).rename_axis(first.date_column)
        run.log_model(exported, example.reset_index().assign(ticker=first.ticker))


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per model over series: the geometric-mean test MAE relative to the random walk, how many
    series it is worse than the random walk on by more than 2 %, and its mean directional
    accuracy."""
    import pandas as pd

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

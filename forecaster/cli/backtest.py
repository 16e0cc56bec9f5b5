"""`python -m forecaster backtest`: the seq2seq and the baselines walked forward through the last
years of a series, on the same origins, with a test of whether any difference is more than luck.
A panel (`data=panel`) walks every series so (forecaster/cli/backtest_panel.py).

`backtest(cfg)` runs and logs one backtest (a parent run; each fit of the seq2seq is a child run
with its learning curves) and returns the summary table; `main` is the Hydra entry point.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import hydra
import numpy as np
import pandas as pd
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from forecaster.api import baseline
from forecaster.cli import config
from forecaster.cli.backtest_panel import backtest_panel
from forecaster.data import load_prices
from forecaster.data.timestamps import calendar_mismatch, check_calendar
from forecaster.errors import ForecasterError
from forecaster.evaluation.backtest import (
    Fold,
    audit,
    by_step,
    forecasts_frame,
    plan_folds,
    summary,
    verdict,
    walk_forward,
)
from forecaster.evaluation.plots import (
    backtest_fan_figure,
    backtest_figure,
    calibration_figure,
    pit_figure,
)
from forecaster.evaluation.probabilistic import PROBABILISTIC_METRIC_NAMES
from forecaster.models import DEEP_MODELS, create
from forecaster.models.base import Forecaster

if TYPE_CHECKING:
    from forecaster.tracking import TrackedRun

log = logging.getLogger(__name__)

# Logged as backtest/<model>/<name>: what a reviewer sorts and compares by in the MLflow UI.
# Interval scores only for the models that forecast quantiles (NaN, so not logged, for others).
LOGGED = [
    "mae", "rmse", "smape", "mase", "directional_accuracy", "mae_vs_naive",
    "dm_naive_absolute_p", "dm_naive_squared_p", "dm_best_absolute_p", "seconds",
    *PROBABILISTIC_METRIC_NAMES,
]  # fmt: skip
SHOWN = ["model", "mae", "rmse", "mase", "mae_vs_naive", "directional_accuracy",
         "dm_naive_absolute_p", "dm_best_absolute_p", "seconds"]  # fmt: skip
SHOWN_INTERVALS = ["model", "pinball_scaled", "crps_scaled", "coverage_80", "coverage_90",
                   "width_90", "winkler_90"]  # fmt: skip


def model_factories(settings: config.BacktestAppConf) -> dict[str, Callable[[], Forecaster]]:
    """One factory per `backtest.models` entry, configured from the run's config."""
    seq2seq = dict(
        window=settings.window,
        model=settings.model,
        train=settings.train,
        target=settings.data.target,
        seed=settings.seed,
        warm_start=settings.backtest.warm_start_weights,
    )

    def factory(name: str) -> Callable[[], Forecaster]:
        if name in DEEP_MODELS:
            return lambda: create(name, **seq2seq)
        return lambda: baseline(name, settings.window, settings.model.quantiles, settings.seed)

    return {name: factory(name) for name in settings.backtest.models}


def backtest(cfg: DictConfig, *, run_name: str | None = None, tags=None) -> pd.DataFrame:
    # MLflow (and TensorFlow, through the tracking layer) load here, not at import: `--help`
    # and `--cfg job` only compose the config.
    from forecaster.cli.progress import Progress
    from forecaster.tracking import TrackedRun

    tracking = cfg.tracking
    with TrackedRun(
        tracking.uri,
        tracking.experiment_name,
        artifact_location=tracking.artifact_location,
        run_name=tracking.run_name or run_name,
        tags={"forecaster.command": "backtest", **(tags or {})},
    ) as run:
        run.log_config(
            OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_yaml(cfg, resolve=True)
        )
        settings: config.BacktestAppConf = OmegaConf.to_object(cfg)
        if settings.data.is_panel:
            return backtest_panel(
                settings,
                run,
                model_factories(settings),
                lambda ticker: _fold_runs(settings, run, ticker or "all series"),
            )
        data, horizon, bt = settings.data, settings.window.horizon, settings.backtest
        check_calendar(data.calendar)
        series = load_prices(data.path, data.date_column, data.price_column)
        run.log_data_source(series, context="backtest")
        prices = series.prices
        for message in calendar_mismatch(prices.index, data.calendar):
            log.warning("%s", message)  # the origins and targets are the data's own bars
        folds = plan_folds(prices, horizon, bt)
        origins = np.concatenate([fold.origins for fold in folds])
        log.info(
            "%s: %d origins from %s to %s, %d fold(s), models %s",
            series.path.name,
            len(origins),
            f"{prices.index[origins[0]]:%Y-%m-%d}",
            f"{prices.index[origins[-1]]:%Y-%m-%d}",
            len(folds),
            ", ".join(bt.models),
        )
        factories = model_factories(settings)
        fits = len(folds) * len(set(factories) | {"naive"})  # the random walk always runs
        progress = Progress(fits, desc="backtest", unit="fit")
        try:
            result = walk_forward(
                prices,
                factories,
                bt,
                horizon,
                folds=folds,
                fit_context=progress.around(_fold_runs(settings, run)),
                progress=log.info,
                reported_levels=settings.model.quantiles,
            )
        finally:
            progress.close()
        table, steps = summary(result), by_step(result)
        run.log_table_metrics(table, "backtest", LOGGED)
        run.log_metrics(
            {
                "backtest/up_share": float(table["up_share"].iloc[0]),
                "backtest/origins": len(origins),
            }
        )
        run.log_frame(table, "backtest/summary.csv")
        run.log_frame(steps, "backtest/by_step.csv")
        run.log_frame(forecasts_frame(result), "backtest/forecasts.parquet")
        run.log_figure(backtest_figure(result, bt.skill_window), "plots/backtest.png")
        if result.quantiles:
            forecasts = result.probabilistic_forecasts()
            run.log_figure(backtest_fan_figure(result), "plots/intervals.png")
            run.log_figure(
                calibration_figure(forecasts, result.actual, result.reported_levels),
                "plots/calibration.png",
            )
            run.log_figure(pit_figure(forecasts, result.actual), "plots/pit.png")
        report = _markdown(table, result.best_baseline(), len(origins), len(folds))
        run.log_text(report, "backtest/summary.md")
        run.set_description(report)
        run.set_tags({"backtest.best_baseline": result.best_baseline()})
        if bt.audit:
            checked = audit(result, factories, bt, progress=log.info)
            dates = ", ".join(f"{prices.index[o]:%Y-%m-%d}" for o in checked.origins)
            run.set_tags({"backtest.audit": f"passed at origins {dates}"})
            log.info("leakage audit passed at origins %s for every model", dates)
        run.runs_table(
            [f"backtest/{model}/{name}" for model in bt.models for name in ("mae", "mae_vs_naive")]
        )
        print(_terminal(table, run.run_id))
    return table


def _fold_runs(settings: config.BacktestAppConf, parent: TrackedRun, ticker: str | None = None):
    """Each fit of a deep model becomes a child run with its learning curves (named with the
    series' ticker in a panel)."""
    from forecaster.tracking import TrackedRun

    tracking = settings.tracking
    series = "" if ticker is None else f"{ticker} "

    @contextlib.contextmanager
    def context(name: str, fold: Fold, model: Forecaster) -> Iterator[None]:
        if name not in DEEP_MODELS:
            yield
            return
        with TrackedRun(
            tracking.uri,
            tracking.experiment_name,
            run_name=f"{name} {series}fold {fold.index + 1}",
            parent_run_id=parent.run_id,
            tags={"forecaster.command": "backtest fold"},
        ) as child:
            child.log_params(
                {
                    "fold": fold.index + 1,
                    "origins": len(fold.origins),
                    "fit_bars": fold.fit_stop - fold.fit_start,
                }
            )
            model.callbacks = [child]
            yield
            history = model.history_
            child.log_metrics(
                {"best_val_loss": history.best_val_loss, "best_epoch": history.best_epoch}
            )

    return context


def _markdown(table: pd.DataFrame, best: str, origins: int, folds: int) -> str:
    lines = [
        f"**Walk-forward backtest**: {origins} origins, {folds} fold(s); best baseline: "
        f"**{best}**. Diebold-Mariano p-values on absolute errors (HLN-corrected); below 0.05 "
        "the difference is unlikely to be luck.",
        "",
        "| model | MAE / naive | MAE | DM p vs naive | DM p vs best baseline | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for _, row in table.sort_values("mae").iterrows():
        lines.append(
            f"| {_bold_if_deep(row['model'])} | {row['mae_vs_naive']:.4f} | {row['mae']:.4g} | "
            f"{row['dm_naive_absolute_p']:.3f} | {row['dm_best_absolute_p']:.3f} | "
            f"{verdict(row, short=True)} |"
        )
    intervals = table.dropna(subset=["pinball_scaled"]).sort_values("pinball_scaled")
    if len(intervals):
        lines += [
            "",
            "**Intervals**: pinball loss and CRPS / the random walk's MAE (lower is better), "
            "coverage (nominal 0.80, 0.90), 90 % width / price, 90 % Winkler score.",
            "",
            "| model | pinball / naive | CRPS / naive | cover 80 % | cover 90 % | width 90 % "
            "| Winkler 90 % |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for _, row in intervals.iterrows():
            lines.append(
                f"| {_bold_if_deep(row['model'])} | {row['pinball_scaled']:.4f} | "
                f"{row['crps_scaled']:.4f} | "
                f"{row['coverage_80']:.3f} | {row['coverage_90']:.3f} | {row['width_90']:.2%} | "
                f"{row['winkler_90']:.4g} |"
            )
    return "\n".join(lines) + "\n"


def _bold_if_deep(name: str) -> str:
    return f"**{name}**" if name in DEEP_MODELS else name


def _terminal(table: pd.DataFrame, run_id: str) -> str:
    shown = table.sort_values("mae")[SHOWN].round(4).to_string(index=False)
    intervals = table.dropna(subset=["pinball_scaled"]).sort_values("pinball_scaled")
    if len(intervals):
        shown += "\n\n" + intervals[SHOWN_INTERVALS].round(4).to_string(index=False)
    verdicts = "\n".join(
        f"  {row['model']:>12}: {verdict(row)}"
        for _, row in table.iterrows()
        if row["model"] in DEEP_MODELS
    )
    return f"{shown}\n{verdicts}\nMLflow run {run_id}"


@hydra.main(config_path=config.CONFIG_PATH, config_name="backtest", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from forecaster.tracking.provenance import run_tags, shown_overrides

    overrides = list(HydraConfig.get().overrides.task)
    try:
        backtest(
            cfg,
            run_name=" ".join(["backtest", *shown_overrides(overrides)]),
            tags=run_tags("backtest", overrides, cfg.seed),
        )
    except ForecasterError as error:
        log.error("%s", error)
        raise SystemExit(1) from None


config.register()

"""`python -m forecaster backtest data=panel`: every series of a panel walked forward with the
same settings, logged as one MLflow run: the summary over series as metrics and a Markdown
description, the per-series tables, forecasts and data sources as artifacts."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from forecaster.cli import config
from forecaster.cli.train_panel import log_panel_source
from forecaster.evaluation.backtest import FitContext, audit
from forecaster.evaluation.panel_backtest import (
    WORSE_MARGIN,
    PanelForecaster,
    forecasts,
    markdown,
    panel_summary,
    per_series,
    per_step,
    ratio_table,
    walk_panel,
)
from forecaster.evaluation.plots import panel_figure
from forecaster.models import DEEP_MODELS
from forecaster.models.base import Forecaster

if TYPE_CHECKING:
    from forecaster.tracking import TrackedRun

log = logging.getLogger(__name__)

# Logged as panel/<model>/<name>.
LOGGED = [
    "gmean_mae_vs_naive", "median_mae_vs_naive", "worse_than_naive", "worst_mae_vs_naive",
    "directional_accuracy", "accuracy_minus_up_share", "beats_up_share",
    "significantly_better", "significantly_worse", "seconds",
]  # fmt: skip
SHOWN = ["model", "gmean_mae_vs_naive", "worse_than_naive", "worst_mae_vs_naive",
         "worst_series", "directional_accuracy", "up_share", "beats_up_share",
         "significantly_better", "significantly_worse", "seconds"]  # fmt: skip


def backtest_panel(
    settings: config.BacktestAppConf,
    run: TrackedRun,
    factories: dict[str, Callable[[], Forecaster]],
    fit_context: Callable[[str | None], FitContext],
) -> pd.DataFrame:
    """Walk every series of `settings.data`'s panel, log the result to `run`, and return the
    summary over series. The deep models are global (one fit per fold on every series) unless
    `backtest.panel_fit=per_series` (one fit per fold and series, like the baselines)."""
    data, horizon, bt = settings.data, settings.window.horizon, settings.backtest
    panel = data.load_panel()
    log_panel_source(run, panel)
    log.info("%d series (%s); models %s", len(panel), ", ".join(panel.tickers), bt.models)
    fitted_globally = bt.panel_fit == "global"
    per_series_models = {
        n: f for n, f in factories.items() if not (fitted_globally and n in DEEP_MODELS)
    }
    result = walk_panel(
        panel,
        per_series_models,
        bt,
        horizon,
        panel_models=global_factories(settings) if fitted_globally else None,
        fit_context=fit_context,
        progress=log.info,
    )
    table = per_series(result)
    overall = panel_summary(table)
    ratios = ratio_table(table)
    run.log_table_metrics(overall, "panel", LOGGED)
    run.log_metrics(
        {
            "panel/series": len(panel),
            "panel/origins": int(table.drop_duplicates("ticker")["origins"].sum()),
            "panel/up_share": float(overall["up_share"].iloc[0]),
        }
    )
    run.log_frame(overall, "panel/summary.csv")
    run.log_frame(table, "panel/per_series.csv")
    run.log_frame(ratios.reset_index(), "panel/mae_vs_naive.csv")
    run.log_frame(per_step(result), "panel/by_step.csv")
    run.log_frame(forecasts(result), "panel/forecasts.parquet")
    for ticker in panel.tickers:
        run.log_frame(
            table[table["ticker"] == ticker].drop(columns="ticker"),
            f"panel/series/{_safe(ticker)}.csv",
        )
    run.log_figure(panel_figure(ratios, WORSE_MARGIN), "plots/panel.png")
    report = markdown(overall, ratios, result.start)
    run.log_text(report, "panel/summary.md")
    run.set_description(report)
    run.set_tags({"backtest.span_start": f"{result.start:%Y-%m-%d}"})
    if bt.audit:
        for ticker, series_result in result.results.items():
            log.info("audit: %s", ticker)
            audit(series_result, per_series_models, bt, progress=log.info)
        # A global fit's cut (evaluation.panel_backtest.fit_cut) is checked by a
        # perturbation test (tests/test_global_model.py), not replayed here: a replay refits
        # on the whole panel once per audited origin.
        run.set_tags({"backtest.audit": f"passed on every series ({len(panel)})"})
        log.info("leakage audit passed on every series for every per-series model")
    shown = overall.sort_values("gmean_mae_vs_naive")[SHOWN].round(4).to_string(index=False)
    print(f"{len(panel)} series, spans from {result.start:%Y-%m-%d}\n{shown}")
    print(f"MLflow run {run.run_id}")
    return overall


def global_factories(settings: config.BacktestAppConf) -> dict[str, Callable[[], PanelForecaster]]:
    """The deep models of `backtest.models` as global models over the panel."""

    def seq2seq() -> PanelForecaster:
        from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster

        return GlobalSeq2SeqForecaster(
            window=settings.window,
            model=settings.model,
            train=settings.train,
            target=settings.data.target,
            seed=settings.seed,
        )

    return {name: seq2seq for name in settings.backtest.models if name in DEEP_MODELS}


def _safe(ticker: str) -> str:
    """A ticker as a file name: anything but letters, digits and ._^=- becomes _."""
    return re.sub(r"[^\w.^=-]", "_", ticker)

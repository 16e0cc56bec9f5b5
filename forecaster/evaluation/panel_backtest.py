"""Backtests of a panel: every series walked forward with the same settings, and a summary over
series that says whether a model is worth having across tickers, not on one lucky series.

The span starts on one date for every series (`span_start`: `backtest.start`, or where the last
`backtest.test_fraction` of the panel's calendar begins), so a model fitted on several series
before the span sees no series' span dates. Each series is then walked forward on its own
bars exactly as a single series is (`walk_forward`), every model on the same origins.

Over series (`panel_summary`), per model:

- ``gmean_mae_vs_naive``: the geometric mean of each series' MAE relative to the random walk's
  on the same origins (a ratio per series, so no series dominates by its price level);
- ``worse_than_naive``: how many series it is worse than the random walk on by more than
  `WORSE_MARGIN`;
- ``directional_accuracy`` against ``up_share``, each series' share of up moves (the accuracy
  of always forecasting "up"): their mean over series, the mean difference, and how many series
  it beats that share on;
- how many series a Diebold-Mariano test finds it significantly better or worse than the random
  walk on (absolute errors, `SIGNIFICANCE`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecaster.data.panel import Panel
from forecaster.errors import DataError
from forecaster.evaluation.backtest import (
    SIGNIFICANCE,
    BacktestConfig,
    BacktestResult,
    FitContext,
    by_step,
    forecasts_frame,
    plan_folds,
    summary,
    walk_forward,
)
from forecaster.models.base import Forecaster

WORSE_MARGIN = 0.02  # "worse than naive" means an MAE ratio above 1 + this


def _no_context(name, fold, model) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class PanelBacktestResult:
    start: pd.Timestamp  # the date of the span's first forecast target, for every series
    results: dict[str, BacktestResult]  # per ticker, in panel order


def span_start(panel: Panel, config: BacktestConfig) -> pd.Timestamp:
    """`backtest.start`, or the date where the last `backtest.test_fraction` of the panel's
    calendar begins (for a one-series panel, the span a single-series backtest uses)."""
    if config.start is not None:
        return pd.Timestamp(config.start)
    calendar = panel.calendar
    return calendar[len(calendar) - round(len(calendar) * config.test_fraction)]


def walk_panel(
    panel: Panel,
    models: Mapping[str, Callable[[], Forecaster]],
    config: BacktestConfig,
    horizon: int,
    *,
    fit_context: Callable[[str], FitContext] = lambda ticker: _no_context,
    progress: Callable[[str], None] = lambda message: None,
) -> PanelBacktestResult:
    """`walk_forward` on every series of `panel` from one span start. `fit_context(ticker)`
    gives the fit context for that series' walk."""
    start = span_start(panel, config)
    each = replace(config, start=start.isoformat())
    results = {}
    for k, ticker in enumerate(panel.tickers, 1):
        prices = panel.prices(ticker)
        try:
            folds = plan_folds(prices, horizon, each)
            progress(f"{ticker} ({k}/{len(panel)}): {len(prices)} bars")
            results[ticker] = walk_forward(
                prices,
                models,
                each,
                horizon,
                folds=folds,
                fit_context=fit_context(ticker),
                progress=progress,
            )
        except DataError as error:
            raise DataError(
                f"ticker {ticker!r} ({panel[ticker].path}), span from {start:%Y-%m-%d}: {error} "
                "Or leave the series out with data.tickers=[...]."
            ) from None
    return PanelBacktestResult(start, results)


def per_series(result: PanelBacktestResult) -> pd.DataFrame:
    """`summary` of every series, one row per ticker and model, with the span's size."""
    frames = []
    for ticker, r in result.results.items():
        dates = r.prices.index[r.origins]
        frames.append(
            summary(r).assign(
                ticker=ticker,
                origins=len(r.origins),
                first_origin=f"{dates[0]:%Y-%m-%d}",
                last_origin=f"{dates[-1]:%Y-%m-%d}",
            )
        )
    table = pd.concat(frames, ignore_index=True)
    first = ["ticker", "model", "origins", "first_origin", "last_origin"]
    return table[first + [c for c in table.columns if c not in first]]


def per_step(result: PanelBacktestResult) -> pd.DataFrame:
    """`by_step` of every series, with a ticker column."""
    return pd.concat(
        [by_step(r).assign(ticker=t) for t, r in result.results.items()], ignore_index=True
    ).pipe(lambda t: t[["ticker", *t.columns[:-1]]])


def forecasts(result: PanelBacktestResult) -> pd.DataFrame:
    """Every forecast of every series (`forecasts_frame`), with a ticker column."""
    return pd.concat(
        [forecasts_frame(r).assign(ticker=t) for t, r in result.results.items()],
        ignore_index=True,
    ).pipe(lambda t: t[["ticker", *t.columns[:-1]]])


def panel_summary(table: pd.DataFrame, margin: float = WORSE_MARGIN) -> pd.DataFrame:
    """One row per model over the series of `table` (a `per_series` table)."""
    rows = []
    for model, group in table.groupby("model", sort=False):
        ratio = group["mae_vs_naive"].to_numpy(dtype=np.float64)
        accuracy = group["directional_accuracy"].to_numpy(dtype=np.float64)
        up = group["up_share"].to_numpy(dtype=np.float64)
        p = group["dm_naive_absolute_p"].to_numpy(dtype=np.float64)
        significant = np.nan_to_num(p, nan=1.0) < SIGNIFICANCE
        worst = int(np.argmax(ratio))
        rows.append(
            {
                "model": model,
                "kind": group["kind"].iloc[0],
                "series": len(group),
                "gmean_mae_vs_naive": float(np.exp(np.mean(np.log(ratio)))),
                "median_mae_vs_naive": float(np.median(ratio)),
                "worse_than_naive": int(np.sum(ratio > 1 + margin)),
                "better_than_naive": int(np.sum(ratio < 1)),
                "worst_mae_vs_naive": float(ratio[worst]),
                "worst_series": group["ticker"].iloc[worst],
                "directional_accuracy": float(np.mean(accuracy)),
                "up_share": float(np.mean(up)),
                "accuracy_minus_up_share": float(np.mean(accuracy - up)),
                "beats_up_share": int(np.sum(accuracy > up)),
                "significantly_better": int(np.sum(significant & (ratio < 1))),
                "significantly_worse": int(np.sum(significant & (ratio > 1))),
                "seconds": float(group["seconds"].sum()),
            }
        )
    return pd.DataFrame(rows)


def ratio_table(table: pd.DataFrame) -> pd.DataFrame:
    """MAE relative to the random walk: one row per ticker, one column per model."""
    wide = table.pivot(index="ticker", columns="model", values="mae_vs_naive")
    return wide.loc[table["ticker"].unique(), table["model"].unique()]


def markdown(summary_table: pd.DataFrame, ratios: pd.DataFrame, start: pd.Timestamp) -> str:
    """The panel's report: the summary over series, then every series' MAE ratios."""
    n = int(summary_table["series"].iloc[0])
    lines = [
        f"**Panel backtest**: {n} series, every span from {start:%Y-%m-%d}. MAE relative to "
        "the random walk on the same origins, geometric mean over series; directional accuracy "
        "against the share of up moves (what always forecasting 'up' scores); DM: "
        f"Diebold-Mariano test against the random walk, p < {SIGNIFICANCE}.",
        "",
        f"| model | MAE / naive (gmean) | worse than naive by >{WORSE_MARGIN:.0%} | worst | "
        "directional accuracy | up share | series above up share | DM better / worse |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for _, row in summary_table.sort_values("gmean_mae_vs_naive").iterrows():
        lines.append(
            f"| {row['model']} | {row['gmean_mae_vs_naive']:.4f} | {row['worse_than_naive']} | "
            f"{row['worst_mae_vs_naive']:.3f} ({row['worst_series']}) | "
            f"{row['directional_accuracy']:.3f} | {row['up_share']:.3f} | "
            f"{row['beats_up_share']} | {row['significantly_better']} / "
            f"{row['significantly_worse']} |"
        )
    lines += [
        "",
        "MAE / naive per series:",
        "",
        "| ticker | " + " | ".join(ratios.columns) + " |",
        "| --- |" + " --- |" * len(ratios.columns),
    ]
    for ticker, row in ratios.iterrows():
        cells = " | ".join("" if math.isnan(v) else f"{v:.4f}" for v in row)
        lines.append(f"| {ticker} | {cells} |")
    return "\n".join(lines) + "\n"

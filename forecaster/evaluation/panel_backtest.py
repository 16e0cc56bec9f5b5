"""Backtests of a panel: every series walked forward with the same settings, and a summary over
series that says whether a model is worth having across tickers, not on one lucky series.

The span starts on one date for every series (`span_start`: `backtest.start`, or where the last
`backtest.test_fraction` of the panel's calendar begins), so a model fitted on several series
before the span sees no series' span dates. Each series is then walked forward on its own
bars exactly as a single series is (`walk_forward`), every model on the same origins.

A global model (`panel_models`: one model over every series, e.g. the seq2seq) is fitted once
per fold on all series instead (`fit_cut`): fold k's fit sees every bar dated on or before the
earliest first origin of fold k over all series, so no series' forecast can see a later date
through another series; it then forecasts every series' fold-k origins. With `refit_every` = 0
(the default) that is one fit before the span.

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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd

from forecaster.data.panel import Panel, PanelSplit
from forecaster.data.splits import _window_counts, target_offset
from forecaster.errors import ConfigError, DataError
from forecaster.evaluation.backtest import (
    SIGNIFICANCE,
    BacktestConfig,
    BacktestResult,
    FitContext,
    Fold,
    by_step,
    forecasts_frame,
    plan_folds,
    summary,
    walk_forward,
)
from forecaster.models.base import Forecast, Forecaster

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


class PanelForecaster(Protocol):
    """A global model: fitted on a whole panel, forecasting any series (a ticker it was not
    fitted on, or None, cold from its own prices)."""

    horizon: int
    min_history: int

    def fit_panel(self, panel: Panel, split: PanelSplit): ...

    def knows(self, ticker: str | None) -> bool: ...

    def predict(
        self, prices: pd.Series, origins: np.ndarray, ticker: str | None, *, context: Panel
    ) -> Forecast: ...

    def close(self) -> None: ...


def walk_panel(
    panel: Panel,
    models: Mapping[str, Callable[[], Forecaster]],
    config: BacktestConfig,
    horizon: int,
    *,
    panel_models: Mapping[str, Callable[[], PanelForecaster]] | None = None,
    fit_context: Callable[[str | None], FitContext] = lambda ticker: _no_context,
    progress: Callable[[str], None] = lambda message: None,
) -> PanelBacktestResult:
    """`walk_forward` on every series of `panel` from one span start; each of `panel_models`
    fitted once per fold on all series (`walk_globally`). `fit_context(ticker)` gives the fit
    context for that series' walk (`fit_context(None)`: for the global fits)."""
    start = span_start(panel, config)
    each = replace(config, start=start.isoformat())
    results, folds = {}, {}
    for k, ticker in enumerate(panel.tickers, 1):
        prices = panel.prices(ticker)
        try:
            folds[ticker] = plan_folds(prices, horizon, each)
            progress(f"{ticker} ({k}/{len(panel)}): {len(prices)} bars")
            results[ticker] = walk_forward(
                prices,
                models,
                each,
                horizon,
                folds=folds[ticker],
                fit_context=fit_context(ticker),
                progress=progress,
            )
        except DataError as error:
            raise DataError(
                f"ticker {ticker!r} ({panel[ticker].path}), span from {start:%Y-%m-%d}: {error} "
                "Or leave the series out with data.tickers=[...]."
            ) from None
    for name, factory in (panel_models or {}).items():
        forecasts, seconds = walk_globally(
            panel, name, factory, folds, config, fit_context(None), progress
        )
        for ticker, result in results.items():
            # The global model first, as the seq2seq is first in a single-series backtest.
            result.forecasts = {name: forecasts[ticker]} | result.forecasts
            result.seconds = {name: seconds[ticker]} | result.seconds
    return PanelBacktestResult(start, results)


def fold_cuts(panel: Panel, folds: Mapping[str, list[Fold]]) -> list[pd.Timestamp]:
    """Per fold index, the date a global fit may see up to: the earliest first origin of that
    fold over the series that have it (each series' fold fits on bars up to its first origin)."""
    count = max(len(f) for f in folds.values())
    return [
        min(panel.prices(t).index[f[k].origins[0]] for t, f in folds.items() if k < len(f))
        for k in range(count)
    ]


def fit_cut(
    panel: Panel,
    cut: pd.Timestamp,
    config: BacktestConfig,
    lookback: int,
    horizon: int,
    target: str,
) -> tuple[Panel, PanelSplit, list[str]]:
    """What a global fit at `cut` sees: every series' bars dated on or before `cut`, split by
    date with the last `config.val_fraction` of those calendar dates as validation. Series with
    too few bars for a training and a validation window are left out of the fit (the model
    forecasts them cold); their tickers are returned third."""
    if config.window != "expanding":
        raise ConfigError(
            "backtest.window=rolling is not built for a global model over a panel: use "
            "backtest.window=expanding, or backtest.models without seq2seq."
        )
    calendar = panel.calendar[panel.calendar <= cut]
    n = len(calendar)
    split = PanelSplit(calendar[n - round(n * config.val_fraction) - 1], cut)
    offset = target_offset(target)
    kept, left_out = [], []
    for s in panel.series:
        dates = s.prices.index[s.prices.index <= cut]
        train_stop = int(dates.searchsorted(split.train_end, side="right"))
        counts = _window_counts(
            len(dates) - offset, lookback, horizon, train_stop - offset, len(dates) - offset
        )
        if min(counts[:2]) > 0:
            bars = None if s.bar_fields is None else s.bar_fields.loc[:cut]
            kept.append(replace(s, prices=s.prices.loc[:cut], bar_fields=bars))
        else:
            left_out.append(s.ticker)
    if not kept:
        raise DataError(
            f"no series of the panel has a training and a validation window before "
            f"{cut:%Y-%m-%d}: start the span later (backtest.start, backtest.test_fraction)."
        )
    return Panel(tuple(kept)), split, left_out


def walk_globally(
    panel: Panel,
    name: str,
    factory: Callable[[], PanelForecaster],
    folds: Mapping[str, list[Fold]],
    config: BacktestConfig,
    fit_context: FitContext,
    progress: Callable[[str], None],
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Fit `factory()`'s model once per fold on all series (`fold_cuts`, `fit_cut`) and forecast
    every series' origins of that fold. Returns per ticker the forecasts [origins, horizon] and
    the seconds: its own forecasting time plus an equal share of the fits."""
    model = factory()
    forecasts: dict[str, list[np.ndarray]] = {t: [] for t in folds}
    seconds = dict.fromkeys(folds, 0.0)
    window = getattr(model, "window", None)
    lookback = window.lookback if window is not None else model.min_history
    try:
        for k, cut in enumerate(fold_cuts(panel, folds)):
            fitted, split, left_out = fit_cut(
                panel, cut, config, lookback, model.horizon, getattr(model, "target", "log_return")
            )
            progress(
                f"{name}: fold {k + 1}, one fit on {len(fitted)} series up to {cut:%Y-%m-%d} "
                f"(validation from {split.train_end:%Y-%m-%d})"
                + (f"; too short, forecast cold: {', '.join(left_out)}" if left_out else "")
            )
            origins = np.concatenate([f[k].origins for f in folds.values() if k < len(f)])
            calendar = fitted.calendar
            fold = Fold(
                k, origins, 0, int(calendar.searchsorted(split.train_end, "right")), len(calendar)
            )
            started = time.perf_counter()
            with fit_context(name, fold, model):
                model.fit_panel(fitted, split)
            describe = getattr(model, "describe_fit", None)
            if describe is not None:
                progress(f"{name}: fold {k + 1}: {describe()}")
            share = (time.perf_counter() - started) / len(folds)  # an equal share per series
            for ticker, series_folds in folds.items():
                if k >= len(series_folds):
                    continue
                started = time.perf_counter()
                known = ticker if model.knows(ticker) else None
                # `context`: covariates (other tickers, bar fields) from the whole panel; each
                # forecast reads nothing dated after its origin (`model.covariates`).
                forecast = model.predict(
                    panel.prices(ticker), series_folds[k].origins, known, context=panel
                )
                forecasts[ticker].append(forecast.prices)
                seconds[ticker] += share + time.perf_counter() - started
    finally:
        model.close()
    return {t: np.concatenate(rows) for t, rows in forecasts.items()}, seconds


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

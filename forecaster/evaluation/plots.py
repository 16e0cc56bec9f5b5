"""Figures for review: forecasts against actuals in prices, learning curves, sweeps, backtests."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # runs headless: sweeps, CI, servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from forecaster.evaluation.backtest import BacktestResult  # noqa: E402
from forecaster.evaluation.evaluate import REFERENCE, Evaluation  # noqa: E402
from forecaster.training.history import History  # noqa: E402


def forecast_figure(
    prices: pd.Series, evaluation: Evaluation, n_origins: int = 4, history_bars: int = 60
) -> Figure:
    """History, actual and forecast (and the naive random walk) at evenly spaced test origins."""
    forecast = evaluation.forecast
    horizon = forecast.prices.shape[1]
    picks = np.unique(np.linspace(0, len(forecast) - 1, num=max(1, n_origins)).round().astype(int))
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.8 * len(picks)), squeeze=False)
    for ax, row in zip(axes[:, 0], picks, strict=True):
        origin = int(forecast.origins[row])
        history = prices.iloc[max(0, origin - history_bars) : origin + 1]
        future = prices.index[origin + 1 : origin + 1 + horizon]
        ax.plot(history.index, history.to_numpy(), color="0.35", label="history")
        actual = evaluation.actual_prices[row]
        ax.plot(future, actual, "o-", color="tab:blue", ms=3, label="actual")
        ax.plot(future, forecast.prices[row], "o-", color="tab:orange", ms=3, label="forecast")
        naive = np.repeat(prices.iloc[origin], len(future))
        ax.plot(future, naive, "--", color="0.6", label="naive")
        ax.axvline(prices.index[origin], color="0.8", lw=1)
        ax.set_title(f"origin {prices.index[origin]:%Y-%m-%d}", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    fig.suptitle(f"Test forecasts, horizon {horizon} ({prices.name})")
    fig.tight_layout()
    return fig


def learning_curve_figure(history: History) -> Figure:
    epochs = np.arange(1, len(history.train_loss) + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(epochs, history.train_loss, label="train_loss (teacher forced)")
    ax.plot(epochs, history.val_loss, label="val_loss (autoregressive)")
    ax.axvline(history.best_epoch, color="0.6", ls="--", label=f"best epoch {history.best_epoch}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE (scaled target)")
    ax.legend()
    fig.tight_layout()
    return fig


def sweep_figure(summary: pd.DataFrame, objective: str, direction: str = "minimize") -> Figure:
    """One bar per sweep job: the objective, and the test RMSE skill against the random walk."""
    names = summary["run_name"].fillna(summary["run_id"]).tolist()
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * len(names) + 1.5), squeeze=False)
    y = np.arange(len(names))
    values = summary[objective]
    best = None
    if values.notna().any():
        best = values.idxmax() if direction == "maximize" else values.idxmin()
    better = "higher" if direction == "maximize" else "lower"
    colors = ["tab:orange" if i == best else "tab:blue" for i in range(len(names))]
    for ax, column, label in (
        (axes[0, 0], objective, f"{objective} ({better} is better)"),
        (axes[0, 1], "test_rmse_skill", "test RMSE skill vs naive (> 0 beats it)"),
    ):
        ax.barh(y, summary[column].fillna(0.0), color=colors)
        ax.set_yticks(y, names, fontsize=7)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=9)
    axes[0, 1].axvline(0.0, color="0.4", lw=1)
    axes[0, 1].set_yticks(y, [""] * len(names))
    fig.tight_layout()
    return fig


def backtest_figure(result: BacktestResult, skill_window: int = 50) -> Figure:
    """Does a model beat the random walk, when, and at which step: the cumulative absolute
    error difference to it (below 0: ahead), the rolling ratio of MAEs, and the MAE by step."""
    dates = result.prices.index[result.origins]
    naive = np.abs(result.errors(REFERENCE))
    fig, axes = plt.subplots(3, 1, figsize=(11, 11))
    cumulative, rolling, steps = axes
    step_axis = np.arange(1, result.horizon + 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(result.forecasts):
        errors = np.abs(result.errors(name))
        width = 2.0 if name not in result.baselines else 1.0
        style = {"lw": width, "color": colours[i % len(colours)]}  # one colour per model
        steps.plot(step_axis, errors.mean(axis=0), "o-", ms=3, label=name, **style)
        if name == REFERENCE:
            continue
        difference = (errors - naive).mean(axis=1)
        cumulative.plot(dates, np.cumsum(difference), label=name, **style)
        window = min(skill_window, len(dates))
        ratio = (
            pd.Series(errors.mean(axis=1)).rolling(window).mean()
            / pd.Series(naive.mean(axis=1)).rolling(window).mean()
        )
        rolling.plot(dates, ratio.to_numpy(), label=name, **style)
    cumulative.axhline(0.0, color="0.3", lw=1)
    cumulative.set_title("cumulative absolute error minus the random walk's (below 0: ahead)")
    cumulative.set_ylabel("price units")
    rolling.axhline(1.0, color="0.3", lw=1)
    rolling.set_title(f"MAE / random walk's MAE over the last {skill_window} origins (< 1: better)")
    steps.set_title("MAE by horizon step")
    steps.set_xlabel("step")
    steps.set_xticks(step_axis)
    for ax in axes:
        ax.legend(fontsize=7, ncol=4)
    fig.suptitle(f"Walk-forward backtest, horizon {result.horizon} ({result.prices.name})")
    fig.tight_layout()
    return fig


def panel_figure(ratios: pd.DataFrame, margin: float) -> Figure:
    """Which series a model beats the random walk on: each series' MAE ratio (rows of
    `ratios`, one column per model), with the lines at 1 and at 1 + `margin`."""
    models = [m for m in ratios.columns if m != REFERENCE]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(ratios) + 1.5))
    rows = np.arange(len(ratios))[::-1]  # the first series on top
    for name, marker in zip(models, "osD^v<>ph*", strict=False):
        ax.plot(ratios[name].to_numpy(), rows, marker, ms=5, alpha=0.8, label=name, ls="none")
    ax.axvline(1.0, color="0.3", lw=1)
    ax.axvline(1.0 + margin, color="tab:red", lw=1, ls="--", label=f"naive + {margin:.0%}")
    ax.set_yticks(rows, ratios.index)
    ax.set_xlabel("MAE / random walk's MAE on the same origins (< 1: better)")
    ax.legend(fontsize=7, ncol=len(models) + 1, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.suptitle("Panel backtest: each series")
    fig.tight_layout()
    return fig

"""Figures for review: forecasts against actuals in prices (fan charts for quantile forecasts),
learning curves, sweeps, backtests, and the calibration of interval forecasts."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # runs headless: sweeps, CI, servers

from collections.abc import Mapping  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from forecaster.evaluation.backtest import BacktestResult  # noqa: E402
from forecaster.evaluation.evaluate import REFERENCE, Evaluation  # noqa: E402
from forecaster.evaluation.probabilistic import (  # noqa: E402
    central_bounds,
    pit_histogram,
    share_below,
)
from forecaster.models.base import MEDIAN, Forecast  # noqa: E402
from forecaster.training.history import History  # noqa: E402

BANDS = (0.9, 0.8, 0.5)  # central intervals of a fan chart, widest (palest) first
FAN_COLOUR = "tab:orange"


def draw_fan(ax: Axes, dates, quantiles: np.ndarray, levels, label: str = "forecast") -> None:
    """The median and the 90/80/50 % central bands (those whose bounds are among `levels`) of
    [steps, Q] quantiles at `dates`, on `ax`."""
    levels = [float(level) for level in levels]
    for coverage, alpha in zip(BANDS, (0.18, 0.3, 0.45), strict=True):
        lower, upper = central_bounds(coverage)
        if lower in levels and upper in levels:
            ax.fill_between(
                dates,
                quantiles[:, levels.index(lower)],
                quantiles[:, levels.index(upper)],
                color=FAN_COLOUR,
                alpha=alpha,
                lw=0,
                label=f"{coverage:.0%} interval" if label else None,
            )
    median = quantiles[:, levels.index(MEDIAN)]
    ax.plot(
        dates, median, "-", color=FAN_COLOUR, lw=1.5, label=f"{label} median" if label else None
    )


def forecast_figure(
    prices: pd.Series, evaluation: Evaluation, n_origins: int = 4, history_bars: int = 60
) -> Figure:
    """History, actual and forecast (and the naive random walk) at evenly spaced test origins;
    for a forecast with quantiles, a fan chart: its median and 50/80/90 % intervals."""
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
        if forecast.is_probabilistic:
            # The fan starts at the origin's price, so the bands open from today's price.
            fan_dates = prices.index[origin : origin + 1 + horizon]
            start = np.full((1, len(forecast.quantile_levels)), prices.iloc[origin])
            draw_fan(
                ax, fan_dates, np.vstack([start, forecast.quantiles[row]]), forecast.quantile_levels
            )
        else:
            ax.plot(future, forecast.prices[row], "o-", color="tab:orange", ms=3, label="forecast")
        naive = np.repeat(prices.iloc[origin], len(future))
        ax.plot(future, naive, "--", color="0.6", label="naive")
        ax.axvline(prices.index[origin], color="0.8", lw=1)
        ax.set_title(f"origin {prices.index[origin]:%Y-%m-%d}", fontsize=9)
        ax.legend(loc="upper left", fontsize=7)
    kind = "median and 50/80/90 % intervals" if forecast.is_probabilistic else "point forecasts"
    fig.suptitle(f"Test forecasts, horizon {horizon}, {kind} ({prices.name})")
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


# -- interval forecasts ----------------------------------------------------------------------------


def _colours(names) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def calibration_figure(
    forecasts: Mapping[str, Forecast], actual: np.ndarray, reported: tuple[float, ...]
) -> Figure:
    """Are the quantiles what they claim? Left: each reported level against the share of
    actuals at or below that quantile, all steps pooled (on the diagonal: calibrated; below it:
    the quantile is too low). Right: the coverage of the 80 % and 90 % central intervals at each
    step against the nominal rates."""
    colours = _colours(forecasts)
    fig, (levels_ax, steps_ax) = plt.subplots(1, 2, figsize=(12, 5))
    levels_ax.plot([0, 1], [0, 1], color="0.5", lw=1, ls="--", label="calibrated")
    horizon = actual.shape[1]
    steps = np.arange(1, horizon + 1)
    for name, forecast in forecasts.items():
        empirical = share_below(forecast.quantiles_at(reported), actual).mean(axis=0)
        levels_ax.plot(reported, empirical, "o-", ms=4, color=colours[name], label=name)
        for coverage, style in ((0.9, "o-"), (0.8, "s--")):
            bounds = central_bounds(coverage)
            if not set(bounds) <= set(forecast.quantile_levels):
                continue
            lower, upper = np.moveaxis(forecast.quantiles_at(bounds), -1, 0)
            covered = ((lower <= actual) & (actual <= upper)).mean(axis=0)
            steps_ax.plot(steps, covered, style, ms=4, color=colours[name],
                          label=f"{name} {coverage:.0%}")  # fmt: skip
    for coverage in (0.9, 0.8):
        steps_ax.axhline(coverage, color="0.4", lw=1, ls=":")
    levels_ax.set_xlabel("nominal level (quantile)")
    levels_ax.set_ylabel("share of actuals at or below the quantile")
    levels_ax.set_title("calibration per quantile (all steps)", fontsize=10)
    levels_ax.set_xlim(0, 1)
    levels_ax.set_ylim(0, 1)
    levels_ax.set_aspect("equal")
    steps_ax.set_xlabel("step")
    steps_ax.set_xticks(steps if horizon <= 10 else steps[:: max(1, horizon // 10)])
    steps_ax.set_ylabel("share of actuals inside the interval")
    steps_ax.set_title("coverage by step (dotted: nominal 80 % and 90 %)", fontsize=10)
    levels_ax.legend(fontsize=8, loc="upper left")
    steps_ax.legend(fontsize=7, ncol=2, loc="best")
    fig.suptitle(f"Calibration of the interval forecasts ({actual.size} forecast cells)")
    fig.tight_layout()
    return fig


def pit_figure(forecasts: Mapping[str, Forecast], actual: np.ndarray) -> Figure:
    """One PIT histogram per model: where each actual fell in its forecast distribution. Flat
    at 1: calibrated; U-shaped: intervals too narrow; hump-shaped: too wide; sloped: the
    median is biased."""
    colours = _colours(forecasts)
    columns = min(3, len(forecasts))
    rows = -(-len(forecasts) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.3 * rows), squeeze=False, sharey=True
    )
    for ax, (name, forecast) in zip(axes.flat, forecasts.items(), strict=False):
        edges, density = pit_histogram(forecast.quantiles, forecast.quantile_levels, actual)
        ax.bar(edges[:-1], density, width=np.diff(edges), align="edge", color=colours[name],
               edgecolor="white", lw=0.5)  # fmt: skip
        ax.axhline(1.0, color="0.3", lw=1, ls="--")
        ax.set_xlim(0, 1)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("PIT = forecast CDF at the actual")
        ax.set_ylabel("density")
    for ax in axes.flat[len(forecasts) :]:
        ax.set_visible(False)
    fig.suptitle("PIT histograms (dashed: calibrated)")
    fig.tight_layout()
    return fig


def backtest_fan_figure(result: BacktestResult, fans: int = 20) -> Figure:
    """Each probabilistic model's last `fans` forecasts of the span, one model below the other
    on the same scale: origins at least a horizon apart, so the fans tile the time line, with
    the price that came. Intervals that breathe with volatility show here."""
    forecasts = result.probabilistic_forecasts()
    dates, p = result.prices.index, np.asarray(result.prices, dtype=np.float64)
    origins = result.origins
    shown = []  # rows of the last `fans` origins a horizon or more apart, latest first
    for row in range(len(origins) - 1, -1, -1):
        if len(shown) == fans:
            break
        if not shown or origins[shown[-1]] - origins[row] >= result.horizon:
            shown.append(row)
    shown.reverse()
    first = origins[shown[0]]
    span = slice(first, origins[shown[-1]] + result.horizon + 1)
    fig, axes = plt.subplots(len(forecasts), 1, figsize=(11, 2.9 * len(forecasts)),
                             squeeze=False, sharex=True, sharey=True)  # fmt: skip
    for ax, (name, forecast) in zip(axes[:, 0], forecasts.items(), strict=True):
        ax.plot(dates[span], p[span], color="0.15", lw=1, label="price")
        for i, row in enumerate(shown):
            origin = origins[row]
            fan = np.vstack(
                [np.full(len(forecast.quantile_levels), p[origin]), forecast.quantiles[row]]
            )
            draw_fan(ax, dates[origin : origin + result.horizon + 1], fan, forecast.quantile_levels,
                     label="" if i else "forecast")  # fmt: skip
        scores = result.interval_scores(name).summary()
        ax.set_title(
            f"{name}: 90 % coverage {scores['coverage_90']:.2f}, width "
            f"{scores['width_90']:.1%} of price, pinball / naive MAE "
            f"{scores['pinball_scaled']:.3f} (whole span)",
            fontsize=9,
        )
        ax.legend(fontsize=7, loc="upper left", ncol=5)
    fig.suptitle(
        f"Interval forecasts, horizon {result.horizon}, from origins {result.horizon} bars apart "
        f"({result.prices.name})"
    )
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

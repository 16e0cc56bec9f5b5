"""Walk-forward backtests: every model forecasts from the same origins, out of sample.

The span is the last part of the series (`backtest.start` or `backtest.test_fraction`). Its
forecast origins are `backtest.stride` bars apart (by default the horizon, so the forecast
targets tile the span without overlap). Origins are grouped into folds of `backtest.refit_every`
bars (0: one fold); before each fold every model is fitted on the prices up to the fold's first
origin (all of them, or the last `backtest.train_size` with `backtest.window=rolling`), the last
`backtest.val_fraction` of them held out as validation (early stopping, model selection); then it
forecasts every origin of the fold in one call, each from the prices up to that origin only.

`audit` checks that claim instead of trusting it: for a sample of origins it replaces every
price after the origin with garbage, runs the walk-forward again up to that origin, and requires
each model's forecast there (and its quantiles, for a probabilistic model) to be bit-identical.

Models that forecast quantiles are also scored as distributions (`evaluation.probabilistic`):
pinball loss, CRPS, coverage, width and Winkler score, overall and by step.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecaster.errors import ConfigError, DataError, ForecasterError
from forecaster.evaluation.evaluate import REFERENCE
from forecaster.evaluation.metrics import forecast_metrics, mase_scale
from forecaster.evaluation.probabilistic import (
    PROBABILISTIC_METRIC_NAMES,
    IntervalScores,
    quantile_column,
    score_quantiles,
)
from forecaster.evaluation.significance import LOSSES, DieboldMariano, diebold_mariano, loss
from forecaster.models import DEEP_MODELS, REGISTRY
from forecaster.models.base import QUANTILE_LEVELS, Forecast, Forecaster, select_levels
from forecaster.models.baselines import NaiveForecaster

SIGNIFICANCE = 0.05
WINDOWS = ("expanding", "rolling")
PANEL_FITS = ("global", "per_series")  # backtest.panel_fit


@dataclass
class BacktestConfig:
    """The `backtest` config group."""

    models: list[str] = field(
        default_factory=lambda: [
            "seq2seq",
            "naive",
            "drift",
            "mean_return",
            "ridge",
            "auto_ets",
            "auto_arima",
            "rw_normal",
            "empirical_quantiles",
            "garch_t",
        ]  # fmt: skip
    )
    start: str | None = None  # date of the first forecast target; None: use test_fraction
    test_fraction: float = 0.2  # the span: the last fraction of the bars
    stride: int | None = None  # bars between origins; None: window.horizon (no overlap)
    refit_every: int = 0  # bars between refits; 0: fit once, on everything before the span
    window: str = "expanding"  # fit on all prices up to a fold, or the last train_size (rolling)
    train_size: int | None = None  # bars a rolling window fits on
    val_fraction: float = 0.15  # of each fold's fitting data, held out for early stopping
    warm_start_weights: bool = False  # the seq2seq's refits start from the last fold's weights
    audit: bool = False  # run the leakage audit after the backtest
    audit_origins: int = 3  # how many origins the audit checks (first, last, evenly between)
    skill_window: int = 50  # origins per point of the rolling-skill plot
    # A panel's seq2seq: one global model per fold over every series, or one model per series
    # (per_series: what a distributional model.output needs, as the global model forecasts
    # points only).
    panel_fit: str = "global"

    def __post_init__(self) -> None:
        unknown = [name for name in self.models if name not in REGISTRY]
        if unknown or not self.models:
            raise ConfigError(
                f"backtest.models={list(self.models)!r}: unknown model(s) {unknown}; choose from "
                f"{sorted(REGISTRY)}, e.g. backtest.models=[seq2seq,naive,ridge]."
            )
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"backtest.models={list(self.models)!r} names a model twice.")
        checks = [
            ("test_fraction", 0 < self.test_fraction < 1, "a fraction in (0, 1)"),
            ("stride", self.stride is None or _positive_int(self.stride), "an integer >= 1"),
            ("refit_every", _int(self.refit_every) and self.refit_every >= 0, "an integer >= 0"),
            ("window", self.window in WINDOWS, f"one of {WINDOWS}"),
            ("val_fraction", 0 < self.val_fraction < 1, "a fraction in (0, 1)"),
            ("audit_origins", _positive_int(self.audit_origins), "an integer >= 1"),
            ("skill_window", _positive_int(self.skill_window), "an integer >= 1"),
            ("panel_fit", self.panel_fit in PANEL_FITS, f"one of {PANEL_FITS}"),
        ]
        for key, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"backtest.{key}={getattr(self, key)!r} is invalid: expected {expected}."
                )
        if self.window == "rolling" and not (
            self.train_size is not None and _positive_int(self.train_size)
        ):
            raise ConfigError(
                f"backtest.window=rolling needs backtest.train_size=<bars> (an integer >= 1), "
                f"got {self.train_size!r}."
            )
        if self.start is not None:
            try:
                pd.Timestamp(self.start)
            except ValueError:
                raise ConfigError(
                    f"backtest.start={self.start!r} is not a date; write it as 2016-01-04."
                ) from None


def _int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | np.integer)


def _positive_int(value) -> bool:
    return _int(value) and value >= 1


@dataclass(frozen=True)
class Fold:
    index: int
    origins: np.ndarray  # positions in the price series, forecast after this fold's fit
    fit_start: int  # prices[fit_start:val_start] is the fold's training part,
    val_start: int  # prices[val_start:fit_stop] its validation part,
    fit_stop: int  # and fit_stop = origins[0] + 1: nothing after the fold's first origin

    def describe(self, prices: pd.Series) -> str:
        dates = prices.index
        return (
            f"fold {self.index + 1} (fitted on {dates[self.fit_start]:%Y-%m-%d} to "
            f"{dates[self.fit_stop - 1]:%Y-%m-%d}, {self.fit_stop - self.fit_start} bars; "
            f"{len(self.origins)} origins)"
        )


def plan_folds(prices: pd.Series, horizon: int, config: BacktestConfig) -> list[Fold]:
    """The span's origins, grouped into folds, and what each fold fits on."""
    n = len(prices)
    stride = config.stride or horizon
    if config.start is not None:
        targets = np.flatnonzero(prices.index >= pd.Timestamp(config.start))
        if not len(targets):
            raise DataError(
                f"backtest.start={config.start} is after the last bar "
                f"({prices.index[-1]:%Y-%m-%d}). Fix: choose an earlier backtest.start."
            )
        first = int(targets[0]) - 1
    else:
        first = n - 1 - round(n * config.test_fraction)
    origins = np.arange(max(first, 0), n - horizon, stride)
    if first < 1 or not len(origins):
        raise DataError(
            f"the backtest span holds no forecast origin: {n} bars, the span starts at bar "
            f"{first + 1} and a forecast needs window.horizon = {horizon} bars after its origin "
            "and some history before it. Fix: set backtest.start to a date with history before "
            "and at least one horizon after it, or change backtest.test_fraction."
        )
    if config.refit_every:
        fold_of = (origins - origins[0]) // config.refit_every
    else:
        fold_of = np.zeros(len(origins), dtype=int)
    folds = []
    for index, fold in enumerate(np.unique(fold_of)):
        members = origins[fold_of == fold]
        fit_stop = int(members[0]) + 1
        fit_start = max(0, fit_stop - config.train_size) if config.window == "rolling" else 0
        val_start = fit_stop - round((fit_stop - fit_start) * config.val_fraction)
        folds.append(Fold(index, members, fit_start, val_start, fit_stop))
    return folds


FitContext = Callable[[str, Fold, Forecaster], contextlib.AbstractContextManager]


def _no_context(name: str, fold: Fold, model: Forecaster) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class BacktestResult:
    prices: pd.Series
    horizon: int
    folds: list[Fold]
    forecasts: dict[str, np.ndarray]  # model -> [origins, horizon] prices
    seconds: dict[str, float]  # model -> fitting and forecasting time, all folds
    mase_scale: float  # one-step naive MAE of the prices before the span
    # Probabilistic models only: [origins, horizon, Q] quantiles of the price at their levels.
    quantiles: dict[str, np.ndarray] = field(default_factory=dict)
    quantile_levels: dict[str, tuple[float, ...]] = field(default_factory=dict)
    reported_levels: tuple[float, ...] = QUANTILE_LEVELS  # model.quantiles: pinball, tables

    @property
    def origins(self) -> np.ndarray:
        return np.concatenate([fold.origins for fold in self.folds])

    @property
    def actual(self) -> np.ndarray:
        p = np.asarray(self.prices, dtype=np.float64)
        return p[self.origins[:, np.newaxis] + np.arange(1, self.horizon + 1)]

    @property
    def origin_prices(self) -> np.ndarray:
        return np.asarray(self.prices, dtype=np.float64)[self.origins]

    @property
    def baselines(self) -> list[str]:
        return [name for name in self.forecasts if name not in DEEP_MODELS]

    def best_baseline(self) -> str:
        """The baseline with the lowest mean absolute error over the span."""
        return min(self.baselines, key=lambda name: np.abs(self.errors(name)).mean())

    def errors(self, name: str) -> np.ndarray:
        return self.forecasts[name] - self.actual

    def probabilistic_forecasts(self) -> dict[str, Forecast]:
        """Every probabilistic model's forecasts over the span, with their quantiles."""
        return {
            name: Forecast.from_quantiles(self.origins, self.quantile_levels[name], values)
            for name, values in self.quantiles.items()
        }

    def interval_scores(self, name: str) -> IntervalScores:
        """The scores of a probabilistic model's quantiles over the span."""
        return score_quantiles(
            self.quantiles[name],
            self.quantile_levels[name],
            self.actual,
            self.origin_prices,
            self.reported_levels,
        )


def walk_forward(
    prices: pd.Series,
    models: Mapping[str, Callable[[], Forecaster]],
    config: BacktestConfig,
    horizon: int,
    *,
    folds: list[Fold] | None = None,
    fit_context: FitContext = _no_context,
    progress: Callable[[str], None] = lambda message: None,
    reported_levels: Sequence[float] = QUANTILE_LEVELS,
) -> BacktestResult:
    """Fit and forecast every model fold by fold (`folds`: those `plan_folds` makes). `models`
    maps names to factories: one instance per model serves every fold, refitted before each.
    `fit_context` wraps each fit (tracking uses it to give a fold's fit its own run).
    `reported_levels` (`model.quantiles`) are the quantiles the report scores and saves."""
    folds = plan_folds(prices, horizon, config) if folds is None else folds
    names = list(dict.fromkeys([*models, REFERENCE]))
    instances = {name: (models.get(name) or _reference(horizon))() for name in names}
    forecasts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    quantiles: dict[str, list[np.ndarray]] = {}
    levels: dict[str, tuple[float, ...]] = {}
    seconds = dict.fromkeys(names, 0.0)
    try:
        for fold in folds:
            train = prices.iloc[fold.fit_start : fold.val_start]
            val = prices.iloc[fold.val_start : fold.fit_stop]
            progress(fold.describe(prices))
            for name, model in instances.items():
                started = time.perf_counter()
                try:
                    with fit_context(name, fold, model):
                        model.fit(train, val)
                except DataError as error:
                    raise DataError(
                        f"backtest {fold.describe(prices)}, model {name}: {error} Fix: start the "
                        "span later (backtest.start, backtest.test_fraction) or fit on more bars "
                        "(backtest.train_size)."
                    ) from None
                forecast = model.predict(prices, fold.origins)
                forecasts[name].append(forecast.prices)
                if forecast.is_probabilistic:
                    quantiles.setdefault(name, []).append(forecast.quantiles)
                    levels[name] = forecast.quantile_levels
                seconds[name] += time.perf_counter() - started
    finally:
        for model in instances.values():
            getattr(model, "close", lambda: None)()
    first = folds[0].origins[0]
    return BacktestResult(
        prices=prices,
        horizon=horizon,
        folds=folds,
        forecasts={name: np.concatenate(rows) for name, rows in forecasts.items()},
        seconds=seconds,
        mase_scale=mase_scale(prices.iloc[: first + 1]),
        quantiles={name: np.concatenate(rows) for name, rows in quantiles.items()},
        quantile_levels=levels,
        reported_levels=tuple(reported_levels),
    )


def _reference(horizon: int) -> Callable[[], Forecaster]:
    return lambda: NaiveForecaster(horizon)


# -- the report ------------------------------------------------------------------------------------


def summary(result: BacktestResult) -> pd.DataFrame:
    """One row per model: metrics over the span, the ratio of its MAE to the random walk's, and
    Diebold-Mariano tests against the random walk and the best baseline (absolute and squared
    loss of the mean error over each forecast's steps, HAC lag horizon - 1); for probabilistic
    models, the interval scores (`PROBABILISTIC_METRIC_NAMES`; NaN for point forecasts)."""
    actual, origin = result.actual, result.origin_prices
    naive_mae = np.abs(result.errors(REFERENCE)).mean()
    best = result.best_baseline()
    rows = []
    for name, forecast in result.forecasts.items():
        row = {"model": name, "kind": "model" if name in DEEP_MODELS else "baseline"}
        row |= forecast_metrics(forecast, actual, origin, result.mase_scale)
        row["mae_vs_naive"] = row["mae"] / naive_mae
        row["up_share"] = float(np.mean(actual > origin[:, np.newaxis]))
        for other, label in ((REFERENCE, "naive"), (best, "best")):
            for kind in LOSSES:
                test = _dm(result, name, other, kind)
                row[f"dm_{label}_{kind}_stat"] = test.statistic
                row[f"dm_{label}_{kind}_p"] = test.p_value
        row |= _interval_columns(result, name)
        row["best_baseline"] = best
        row["seconds"] = result.seconds[name]
        rows.append(row)
    return pd.DataFrame(rows)


def by_step(result: BacktestResult) -> pd.DataFrame:
    """One row per model and horizon step: the same metrics and tests, step by step."""
    actual, origin = result.actual, result.origin_prices
    naive = result.errors(REFERENCE)
    rows = []
    for name, forecast in result.forecasts.items():
        errors = result.errors(name)
        for k in range(result.horizon):
            step = slice(k, k + 1)
            row = {"model": name, "step": k + 1}
            row |= forecast_metrics(forecast[:, step], actual[:, step], origin, result.mase_scale)
            row["mae_vs_naive"] = np.abs(errors[:, k]).mean() / np.abs(naive[:, k]).mean()
            row["up_share"] = float(np.mean(actual[:, k] > origin))
            test = _dm_losses(
                loss(errors[:, k], "absolute"), loss(naive[:, k], "absolute"), k + 1, name
            )
            row["dm_naive_absolute_p"] = test.p_value
            row |= _interval_columns(result, name, step=k + 1)
            rows.append(row)
    return pd.DataFrame(rows)


def _interval_columns(result: BacktestResult, name: str, step: int | None = None) -> dict:
    if name not in result.quantiles:
        return dict.fromkeys(PROBABILISTIC_METRIC_NAMES, math.nan)
    return result.interval_scores(name).summary(step)


def _dm(result: BacktestResult, name: str, other: str, kind: str) -> DieboldMariano:
    per_origin = [loss(result.errors(m), kind).mean(axis=1) for m in (name, other)]
    return _dm_losses(*per_origin, result.horizon, name if name != other else None)


def _dm_losses(a: np.ndarray, b: np.ndarray, horizon: int, name: str | None) -> DieboldMariano:
    if name is None or len(a) < 2:  # a model against itself, or too few origins to test
        return DieboldMariano(math.nan, math.nan, 0.0, len(a), horizon - 1)
    return diebold_mariano(a, b, horizon=min(horizon, len(a)))


def verdict(row: pd.Series, short: bool = False) -> str:
    """Whether a model beats the random walk, and whether that is more than luck: a sentence,
    or (`short`) a few words for a table."""
    ratio, p = row["mae_vs_naive"], row["dm_naive_absolute_p"]
    if row["model"] == REFERENCE:
        return "reference" if short else "the random walk itself: the reference"
    if not np.isfinite(p):
        return "untested" if short else f"MAE {ratio:.4f} x the random walk's; no test possible"
    if p < SIGNIFICANCE:
        word = "beats" if ratio < 1 else "worse than"
        if short:
            return f"{word} the random walk"
        return f"{word} the random walk: MAE {ratio:.4f} x, significant (DM p = {p:.3f})"
    if short:
        return "no better than the random walk"
    luck = ", within luck" if ratio < 1 else ""
    return f"no better than the random walk: MAE {ratio:.4f} x{luck} (DM p = {p:.3f})"


def forecasts_frame(result: BacktestResult) -> pd.DataFrame:
    """Every forecast: one row per model, origin and step, with the price that came, and for
    probabilistic models the quantiles at the reported levels (`q0.05` ... `q0.95`; NaN for
    point forecasts)."""
    dates = result.prices.index
    origins, horizon = result.origins, result.horizon
    fold_of = np.concatenate([np.full(len(f.origins), f.index + 1) for f in result.folds])
    steps = np.tile(np.arange(1, horizon + 1), len(origins))
    repeat = np.repeat(np.arange(len(origins)), horizon)
    common = pd.DataFrame(
        {
            "fold": fold_of[repeat],
            "origin_date": dates[origins][repeat],
            "origin_price": result.origin_prices[repeat],
            "step": steps,
            "target_date": dates[(origins[:, np.newaxis] + np.arange(1, horizon + 1)).ravel()],
            "actual": result.actual.ravel(),
        }
    )
    reported = result.reported_levels
    quantile_columns = [quantile_column(level) for level in reported]
    frames = []
    for name, forecast in result.forecasts.items():
        frame = common.assign(model=name, forecast=forecast.ravel())
        if name in result.quantiles:
            values = select_levels(result.quantile_levels[name], result.quantiles[name], reported)
            frame[quantile_columns] = values.reshape(-1, len(reported))
        else:
            frame[quantile_columns] = np.nan
        frames.append(frame)
    columns = ["model", "fold", "origin_date", "origin_price", "step", "target_date"]
    return pd.concat(frames, ignore_index=True)[[*columns, "forecast", *quantile_columns, "actual"]]


# -- the leakage audit -------------------------------------------------------------------------


class LeakageError(ForecasterError, RuntimeError):
    """A forecast changed when only data after its origin did: the model looks ahead."""


@dataclass(frozen=True)
class AuditResult:
    origins: list[int]  # positions checked
    models: list[str]


def audit(
    result: BacktestResult,
    models: Mapping[str, Callable[[], Forecaster]],
    config: BacktestConfig,
    *,
    seed: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> AuditResult:
    """Replace every price after each sampled origin with garbage (its later log returns
    shuffled and scaled, so prices stay positive and finite), replay the fold holding that
    origin with fresh models (every fold up to it when refits warm-start from the last fold),
    and require every model's forecast there, and its quantiles, to be bit-identical."""
    origins = result.origins
    picks = np.unique(np.linspace(0, len(origins) - 1, config.audit_origins).round().astype(int))
    rng = np.random.default_rng(seed)
    failures = []
    for row in picks:
        origin = int(origins[row])
        holding = next(f.index for f in result.folds if origin in f.origins)
        first = 0 if config.warm_start_weights else holding
        garbage = _garbage_after(result.prices, origin, rng)
        progress(f"audit: origin {result.prices.index[origin]:%Y-%m-%d}, later prices replaced")
        replay = walk_forward(
            garbage, models, config, result.horizon, folds=result.folds[first : holding + 1]
        )
        replay_row = int(np.flatnonzero(replay.origins == origin)[0])
        for name, forecast in replay.forecasts.items():
            checked = [("forecast", result.forecasts[name][row], forecast[replay_row])]
            if name in result.quantiles:
                expected, got = result.quantiles[name][row], replay.quantiles[name][replay_row]
                checked.append(("interval", expected, got))
            for what, expected, got in checked:
                if not np.array_equal(got, expected):
                    failures.append(
                        f"{name} at origin {result.prices.index[origin]:%Y-%m-%d}: {what} moved "
                        f"by up to {np.max(np.abs(got - expected)):.6g} when only later prices "
                        "changed"
                    )
    if failures:
        raise LeakageError(
            "leakage audit failed: a forecast depends on data after its origin.\n  "
            + "\n  ".join(failures)
        )
    return AuditResult([int(origins[row]) for row in picks], list(result.forecasts))


def _garbage_after(prices: pd.Series, origin: int, rng: np.random.Generator) -> pd.Series:
    p = np.asarray(prices, dtype=np.float64)
    later = np.log(p[origin + 1 :] / p[origin:-1])
    scale = rng.uniform(0.2, 5.0)
    garbage = p.copy()
    garbage[origin + 1 :] = p[origin] * np.exp(np.cumsum(rng.permutation(later) * scale))
    return pd.Series(garbage, index=prices.index, name=prices.name)

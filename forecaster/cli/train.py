"""`python -m forecaster train`: load, split, fit, evaluate against the naive baseline, log.
A panel (`data=panel`) trains one global model over every series (forecaster/cli/train_panel.py).

`train(cfg)` does the work and returns the metrics; `main` is the Hydra entry point and returns
the metric named by `objective.metric`, which sweepers optimise.

TensorFlow, MLflow, pandas and matplotlib are imported inside the functions that use them:
`--help` and `--cfg job` only compose the config, and should not wait ~10 s for them.
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from forecaster.cli import config
from forecaster.cli.sweep_callback import sweep_dir
from forecaster.errors import ConfigError, ForecasterError

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.evaluation import Evaluation
    from forecaster.models.base import Forecaster
    from forecaster.tracking import TrackedRun

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig,
    *,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
) -> dict[str, float]:
    """Train, evaluate and log one run; return its metrics. `tracking.run_name` wins over
    `run_name`; `parent_run_id` makes the run a sweep's child."""
    from forecaster.data import load_prices, time_split
    from forecaster.evaluation import evaluate
    from forecaster.evaluation.plots import forecast_figure, learning_curve_figure
    from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster
    from forecaster.serving import StreamState
    from forecaster.tracking import TrackedRun

    tracking = cfg.tracking
    with TrackedRun(
        tracking.uri,
        tracking.experiment_name,
        artifact_location=tracking.artifact_location,
        run_name=tracking.run_name or run_name,
        tags=tags,
        parent_run_id=parent_run_id,
    ) as run:
        run.log_config(
            OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_yaml(cfg, resolve=True)
        )
        settings: config.TrainAppConf = OmegaConf.to_object(cfg)  # checks every value
        if settings.data.is_panel:
            from forecaster.cli.train_panel import train_panel

            return train_panel(settings, run)
        _check_objective(settings.objective.metric, settings.train.baselines)
        data, window = settings.data, settings.window
        series = load_prices(data.path, data.date_column, data.price_column)
        run.log_data_source(series)
        prices = series.prices
        split = time_split(prices, window, data.target)
        log.info(
            "%s: %d bars; train to %s, validation to %s, %d test origins",
            series.path.name,
            len(prices),
            f"{split.train_end:%Y-%m-%d}",
            f"{split.val_end:%Y-%m-%d}",
            len(split.test_origins(window.horizon)),
        )
        with Seq2SeqForecaster(
            window=window,
            model=settings.model,
            train=settings.train,
            target=data.target,
            seed=settings.seed,
            callbacks=[run],
        ) as model:
            model.fit(split.train(prices), split.val(prices))
            evaluation = evaluate(
                model, prices, split, _baselines(settings), settings.model.quantiles
            )
            history = model.history_
            metrics = {"best_val_loss": history.best_val_loss} | evaluation.tracked_metrics
            run.log_metrics(metrics | {"best_epoch": history.best_epoch})
            run.set_tags({"test_best_baseline": evaluation.best_baseline})
            run.log_state(
                StreamState.of_forecast(evaluation.forecast, prices, -1),
                _describe_last_window(prices, evaluation, settings),
            )
            run.log_figure(
                forecast_figure(prices, evaluation, settings.eval.plot_origins, window.lookback),
                "plots/forecast.png",
            )
            run.log_figure(learning_curve_figure(history), "plots/learning_curve.png")
            _log_intervals(run, evaluation, settings)
            with tempfile.TemporaryDirectory() as tmp:
                exported = model.export(
                    Path(tmp) / "exported_model",
                    price_column=series.price_column,
                    date_column=series.date_column,
                )
                recent = prices.iloc[-(window.lookback + 1) :]
                example = recent.rename(series.price_column).rename_axis(data.date_column)
                run.log_model(exported, example.reset_index())
        log.info(
            "test rmse %.4f vs naive %.4f (skill %.3f), mase %.3f; mae %.4f vs the best "
            "baseline's (%s) %.4f (skill %.3f); run %s",
            metrics["test_rmse"],
            metrics["naive_test_rmse"],
            metrics["test_rmse_skill"],
            metrics["test_mase"],
            metrics["test_mae"],
            evaluation.best_baseline,
            metrics[f"{evaluation.best_baseline}_test_mae"],
            metrics["test_skill_vs_best_baseline"],
            run.run_id,
        )
    return metrics


def _baselines(settings: config.TrainAppConf) -> dict[str, Forecaster]:
    """The `train.baselines` to score beside the model (the random walk always is)."""
    from forecaster.cli.baselines import baseline

    return {
        name: baseline(name, settings.window, settings.model.quantiles, settings.seed)
        for name in settings.train.baselines
    }


def _log_intervals(run: TrackedRun, evaluation: Evaluation, settings: config.TrainAppConf) -> None:
    """For the forecasts with quantiles (the model's, probabilistic baselines'): the interval
    scores by step, the calibration plot and the PIT histograms."""
    forecasts = evaluation.probabilistic_forecasts
    if not forecasts:
        return
    from forecaster.evaluation.plots import calibration_figure, pit_figure

    run.log_frame(evaluation.intervals_by_step, "eval/intervals_by_step.csv")
    actual, reported = evaluation.actual_prices, tuple(settings.model.quantiles)
    run.log_figure(calibration_figure(forecasts, actual, reported), "plots/calibration.png")
    run.log_figure(pit_figure(forecasts, actual), "plots/pit.png")


def _check_objective(metric: str, baselines: list[str]) -> None:
    from forecaster.evaluation import Evaluation

    logged = ["best_val_loss", "best_epoch", *Evaluation.tracked_names(baselines)]
    if metric not in logged:
        raise ConfigError(
            f"objective.metric={metric!r} is not a metric a run logs; choose one of {logged}."
        )


def _describe_last_window(
    prices: pd.Series, evaluation: Evaluation, settings: config.TrainAppConf
) -> dict:
    """What `states/final_states.json` says of the state logged beside it."""
    forecast, window = evaluation.forecast, settings.window
    last = len(forecast) - 1
    origin = int(forecast.origins[last])
    dates = prices.index
    return {
        "layout": "per layer k: c (cell state) then h (hidden state), each [1, num_units]; "
        "encoder_* is the state handed to the decoder as its initial state",
        "num_layers": settings.model.num_layers,
        "num_units": settings.model.num_units,
        "window": {
            "split": "test",
            "index": last,
            "origin_date": f"{dates[origin]:%Y-%m-%d}",
            "origin_price": float(prices.iloc[origin]),
            "first_input_date": f"{dates[origin - window.lookback + 1]:%Y-%m-%d}",
            "lookback": window.lookback,
            "horizon": window.horizon,
            "encoder_initial_state": "zeros",
        },
    }


@hydra.main(config_path=config.CONFIG_PATH, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the objective metric sweepers optimise (NaN for a failed job)."""
    from forecaster.tracking.provenance import run_tags, shown_overrides
    from forecaster.tracking.sweeps import find_sweep

    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    in_sweep = hydra_config.mode == RunMode.MULTIRUN
    parent_run_id, common = None, []
    if in_sweep:
        parent = find_sweep(
            cfg.tracking.uri, cfg.tracking.experiment_name, sweep_dir(hydra_config.sweep.dir)
        )
        if parent is not None:
            parent_run_id, common = parent
    try:
        metrics = train(
            cfg,
            # The parent names what all jobs share; a child, what is its own.
            run_name=" ".join(shown_overrides(overrides, common)) or None,
            tags=run_tags("train", overrides, cfg.seed),
            parent_run_id=parent_run_id,
        )
        return metrics[cfg.objective.metric]
    except Exception as error:
        user_error = isinstance(error, ForecasterError)
        if not in_sweep and not user_error:
            raise  # a bug: keep the traceback
        # A user error's message says what to fix: no traceback. In a sweep, one bad job must
        # not end the others: its run is FAILED with the reason, and its objective is NaN.
        log.error("%s", error, exc_info=not user_error)
        if in_sweep:
            return math.nan
        raise SystemExit(1) from None


config.register()

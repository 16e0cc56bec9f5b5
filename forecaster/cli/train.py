"""`python -m forecaster train`: load, split, fit, evaluate against the baselines, log.
The split, fit and evaluation are the Python API's (`forecaster.api.Forecaster.fit`); this
module adds tracking, checkpoints, stops and resume.
A panel (`data=panel`) trains one global model over every series (forecaster/cli/train_panel.py).

`train(cfg)` does the work and returns the metrics; `main` is the Hydra entry point and returns
the metric named by `objective.metric`, which sweepers optimise. `resume=<run id>` (or `last`)
continues a stopped run from its checkpoint, with the config it started with, into the same
MLflow run.

TensorFlow, MLflow, pandas and matplotlib are imported inside the functions that use them:
`--help` and `--cfg job` only compose the config, and should not wait ~10 s for them.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from forecaster.cli import config
from forecaster.cli.signals import stop_on_signals
from forecaster.cli.sweep_callback import label_job_logs, sweep_dir
from forecaster.errors import ConfigError, ForecasterError, TrainingInterrupted
from forecaster.training.stopping import StopRequest

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.evaluation import Evaluation
    from forecaster.tracking import TrackedRun
    from forecaster.tracking.resume import Resumable

log = logging.getLogger(__name__)


def train(
    cfg: DictConfig,
    *,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    stop_request: StopRequest | None = None,
    resume: Resumable | None = None,
) -> dict[str, float]:
    """Train, evaluate and log one run; return its metrics. `tracking.run_name` wins over
    `run_name`; `parent_run_id` makes the run a sweep's child; `stop_request` stops training at
    a batch boundary; `resume` continues that run from its checkpoint."""
    config.check_known_keys(cfg, config.TrainAppConf)
    from forecaster.tracking import TrackedRun
    from forecaster.training import checkpoints

    tracking = cfg.tracking
    run = TrackedRun(
        tracking.uri,
        tracking.experiment_name,
        artifact_location=tracking.artifact_location,
        run_name=tracking.run_name or run_name,
        tags=tags,
        parent_run_id=parent_run_id,
        run_id=resume.run_id if resume else None,
    )
    try:
        metrics = _train(cfg, run, stop_request, resume)
    except TrainingInterrupted as stopped:
        if run.checkpoint_dir is not None and (run.checkpoint_dir / checkpoints.LATEST).exists():
            log.error(
                "%s. Continue it with: python -m forecaster train resume=%s", stopped, run.run_id
            )
        raise
    if run.checkpoint_dir is not None:
        shutil.rmtree(run.checkpoint_dir, ignore_errors=True)  # finished: nothing to resume
    # A sweep's jobs leave this to the sweep's end, which refits and registers only its best.
    if parent_run_id is None and (cfg.train.refit_full or cfg.train.register_as):
        from forecaster.cli.refit import deploy

        deploy(cfg, run.run_id, tags)
    return metrics


def _train(
    cfg: DictConfig, run: TrackedRun, stop_request: StopRequest | None, resume: Resumable | None
) -> dict[str, float]:
    from forecaster.api import Forecaster
    from forecaster.cli.progress import Progress
    from forecaster.data import load_prices
    from forecaster.data.timestamps import check_calendar, describe_calendar
    from forecaster.evaluation.plots import forecast_figure, learning_curve_figure
    from forecaster.serving import StreamState
    from forecaster.tracking.ui import RUNS_TABLE

    with run:
        if resume is None:
            run.log_config(
                OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_yaml(cfg, resolve=True)
            )
        settings: config.TrainAppConf = OmegaConf.to_object(cfg)  # checks every value
        checkpoint_dir = None
        if resume is not None:
            checkpoint_dir = resume.checkpoint_dir
        elif settings.checkpoint_dir is not None:
            checkpoint_dir = Path(settings.checkpoint_dir).resolve() / run.run_id
        # The Python API's estimator, configured by the same keys: one path from prices to a
        # scored model for the CLI and notebooks; the CLI adds tracking, checkpoints and stops.
        model = Forecaster.from_config(OmegaConf.to_container(cfg, resolve=True))
        if settings.data.is_panel:
            from forecaster.cli.train_panel import train_panel

            with model:
                return train_panel(
                    settings, model, run, checkpoint_dir, stop_request, resume is not None
                )
        _check_objective(settings.objective.metric, settings.train.baselines)
        data, window = settings.data, settings.window
        check_calendar(data.calendar)
        series = load_prices(data.path, data.date_column, data.price_column)
        run.log_data_source(series, context="training")
        log.info("%s", describe_calendar(data.calendar))
        if checkpoint_dir is not None:
            run.record_checkpoint_dir(checkpoint_dir)
        progress = Progress(settings.train.epochs)
        with model:
            try:
                model.fit(
                    series,
                    callbacks=[run, progress],
                    checkpoint_dir=checkpoint_dir,
                    stop_request=stop_request,
                    resume=resume is not None,
                )
            finally:
                progress.close()
            prices, evaluation, history = model.prices_, model.evaluation_, model.history_
            for message in evaluation.warnings.values():
                log.warning("%s", message)
            run.set_tags({f"warning.{name}": text for name, text in evaluation.warnings.items()})
            metrics = model.metrics_
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
                run.log_model(model.export(Path(tmp) / "exported_model"), model.input_example())
            run.runs_table(RUNS_TABLE)
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


def resume_run(cfg: DictConfig, overrides: list[str], stop_request: StopRequest) -> dict:
    """Continue the run `cfg.resume` names, with the config it was started with."""
    from forecaster.tracking.resume import check_run_id, find_resumable

    if cfg.resume != "last":
        check_run_id(cfg.resume, "resume")
    others = [o for o in overrides if _key(o) != "resume" and not _key(o).startswith("tracking.")]
    if others:
        raise ConfigError(
            f"resume={cfg.resume} continues a run with the config it started with, so it takes "
            f"no other overrides; drop {others} (tracking.* may stay, to name the store)."
        )
    found = find_resumable(cfg.tracking.uri, cfg.tracking.experiment_name, cfg.resume)
    run_cfg = OmegaConf.merge(
        OmegaConf.structured(config.TrainAppConf), OmegaConf.create(found.config_yaml)
    )
    run_cfg.tracking = cfg.tracking  # the store it was found in
    log.info(
        "resuming run %s (%s, %s) from %s",
        found.run_id,
        found.run_name,
        found.status,
        found.checkpoint_dir,
    )
    return train(run_cfg, stop_request=stop_request, resume=found)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


@hydra.main(config_path=config.CONFIG_PATH, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the objective metric sweepers optimise (NaN for a failed job). SIGINT and SIGTERM
    stop training at a batch boundary (`cli.signals`): the run ends KILLED, `TrainingInterrupted`
    propagates (a sweep stops too) and `python -m forecaster` exits with 128 + the signal."""
    from forecaster.tracking.provenance import run_tags, shown_overrides
    from forecaster.tracking.sweeps import find_sweep

    hydra_config = HydraConfig.get()
    overrides = list(hydra_config.overrides.task)
    in_sweep = hydra_config.mode == RunMode.MULTIRUN
    try:
        with stop_on_signals(StopRequest()) as stop_request:
            if cfg.resume is not None:
                if in_sweep:
                    raise ConfigError(f"resume={cfg.resume} continues one run: drop -m.")
                metrics = resume_run(cfg, overrides, stop_request)
                return metrics[cfg.objective.metric]
            parent_run_id, common = None, []
            if in_sweep:
                parent = find_sweep(
                    cfg.tracking.uri,
                    cfg.tracking.experiment_name,
                    sweep_dir(hydra_config.sweep.dir),
                )
                if parent is not None:
                    parent_run_id, common = parent
                own = " ".join(shown_overrides(overrides, common))
                label_job_logs(f"job {hydra_config.job.num}: {own}")
            metrics = train(
                cfg,
                # The parent names what all jobs share; a child, what is its own.
                run_name=" ".join(shown_overrides(overrides, common)) or None,
                tags=run_tags("train", overrides, cfg.seed),
                parent_run_id=parent_run_id,
                stop_request=stop_request,
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

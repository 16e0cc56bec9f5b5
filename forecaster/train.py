"""`python -m forecaster train`: load, window, fit, evaluate against the naive baseline, log.

`train(cfg)` does the work and returns the metrics; `main` is the Hydra entry point and returns
the validation loss, the objective a sweeper minimises.
"""

from __future__ import annotations

import logging
import math

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from forecaster import config, plots, provenance
from forecaster.data import load_prices
from forecaster.errors import ForecasterError
from forecaster.evaluation import evaluate
from forecaster.graph import ModelSpec
from forecaster.model import Seq2SeqModel
from forecaster.serving import Preprocessing
from forecaster.sweep import sweep_dir
from forecaster.tracking import TrackedRun, find_sweep
from forecaster.training import TrainConfig, fit
from forecaster.windows import make_dataset

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
        series = load_prices(cfg.data.path, cfg.data.date_column, cfg.data.price_column)
        run.log_data_source(series)
        dataset = make_dataset(series.prices, target=cfg.data.target, **cfg.window)
        log.info(
            "%s: %d bars; windows train=%d val=%d test=%d (train to %s, val to %s)",
            series.path.name,
            len(series.prices),
            len(dataset.train),
            len(dataset.val),
            len(dataset.test),
            f"{dataset.train_end:%Y-%m-%d}",
            f"{dataset.val_end:%Y-%m-%d}",
        )
        spec = ModelSpec(
            horizon=cfg.window.horizon,
            **cfg.model,
            learning_rate=cfg.train.learning_rate,
            clip_norm=cfg.train.clip_norm,
        )
        train_config = TrainConfig(
            epochs=cfg.train.epochs,
            batch_size=cfg.train.batch_size,
            patience=cfg.train.patience,
            seed=cfg.seed,
        )
        with Seq2SeqModel(
            spec,
            seed=cfg.seed,
            intra_op_threads=cfg.train.intra_op_threads,
            inter_op_threads=cfg.train.inter_op_threads,
        ) as model:
            history = fit(model, dataset.train, dataset.val, train_config, callbacks=[run])
            evaluation = evaluate(model, dataset)
            metrics = {"best_val_loss": history.best_val_loss} | evaluation.tracked_metrics
            run.log_metrics(metrics | {"best_epoch": history.best_epoch})
            run.log_states(
                evaluation.last_encoder_state,
                evaluation.last_decoder_state,
                evaluation.last_window,
            )
            run.log_figure(
                plots.forecast_figure(dataset, evaluation.forecast_prices, cfg.eval.plot_origins),
                "plots/forecast.png",
            )
            run.log_figure(plots.learning_curve_figure(history), "plots/learning_curve.png")
            preprocessing = Preprocessing.of(series, dataset, spec)
            recent = series.prices.iloc[-(cfg.window.lookback + 1) :]
            example = (
                recent.rename(series.price_column).rename_axis(series.date_column).reset_index()
            )
            run.log_model(model, preprocessing, example)
        log.info(
            "test rmse %.4f vs naive %.4f (skill %.3f), mase %.3f; run %s",
            metrics["test_rmse"],
            metrics["naive_test_rmse"],
            metrics["test_rmse_skill"],
            metrics["test_mase"],
            run.run_id,
        )
    return metrics


config.register()


@hydra.main(config_path=config.CONFIG_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Returns the validation loss: the objective sweepers minimise (NaN for a failed job)."""
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
            run_name=" ".join(provenance.shown_overrides(overrides, common)) or None,
            tags=provenance.run_tags("train", overrides, cfg.seed),
            parent_run_id=parent_run_id,
        )
        return metrics["best_val_loss"]
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

"""`python -m forecaster train`: load, window, fit, evaluate against the naive baseline, log.

`train(cfg)` does the work and returns the metrics; `main` is the Hydra entry point and returns
the validation loss, the objective a sweeper minimises.
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from forecaster import config, plots
from forecaster.data import load_prices
from forecaster.errors import ForecasterError
from forecaster.evaluation import evaluate
from forecaster.graph import ModelSpec
from forecaster.model import Seq2SeqModel
from forecaster.serving import Preprocessing
from forecaster.tracking import TrackedRun
from forecaster.training import TrainConfig, fit
from forecaster.windows import make_dataset

log = logging.getLogger(__name__)

CONFIG_DIR = str(config.project_path("conf"))


def train(cfg: DictConfig) -> dict[str, float]:
    tracking = cfg.tracking
    with TrackedRun(
        tracking.uri,
        tracking.experiment_name,
        artifact_location=tracking.artifact_location,
        run_name=tracking.run_name,
    ) as run:
        run.log_config(OmegaConf.to_container(cfg, resolve=True), OmegaConf.to_yaml(cfg))
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


@hydra.main(config_path=CONFIG_DIR, config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)["best_val_loss"]
    except ForecasterError as error:
        # The user's to fix, and the message says how: no traceback. The MLflow run is FAILED.
        log.error("%s", error)
        raise SystemExit(1) from None

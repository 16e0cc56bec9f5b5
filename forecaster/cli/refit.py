"""The model to forecast with: refit on every bar, then register (`train.refit_full`,
`train.register_as`).

An evaluated run trains on the first part of the data and is scored on the last: its metrics are
honest, but its weights never saw the last years. `refit_full` retrains the same configuration on
every bar up to the last, for the epoch count early stopping chose (there is no data left to stop
on), and logs it as its own run, tagged with the evaluated run it refits (and the evaluated run
with it). The registry then points at the refit: evaluate with the one, forecast with the other.

A single `train` does this after its evaluated run; a sweep does it once, for its best run, when
every job has ended (`deploy_sweep`).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from forecaster.cli import config

log = logging.getLogger(__name__)


def refit_full(
    cfg: DictConfig, evaluated_run_id: str, epochs: int, tags: dict[str, str] | None = None
) -> str:
    """Retrain `cfg`'s configuration on every bar for `epochs` epochs; return the new run's id."""
    import numpy as np

    from forecaster.data import load_prices
    from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster
    from forecaster.serving import StreamState
    from forecaster.tracking import TrackedRun
    from forecaster.tracking.registry import REFIT_OF_TAG, evaluated_run, link_refit

    settings: config.TrainAppConf = OmegaConf.to_object(cfg)
    tracking, data, window = settings.tracking, settings.data, settings.window
    evaluated = evaluated_run(tracking.uri, evaluated_run_id)
    refit_cfg = OmegaConf.merge(cfg, {"train": {"epochs": epochs, "refit_full": False}})
    with TrackedRun(
        tracking.uri,
        tracking.experiment_name,
        artifact_location=tracking.artifact_location,
        run_name=f"refit {evaluated.run_name}"[:250],
        tags=(tags or {}) | {REFIT_OF_TAG: evaluated_run_id},
    ) as run:
        run.log_config(
            OmegaConf.to_container(refit_cfg, resolve=True),
            OmegaConf.to_yaml(refit_cfg, resolve=True),
        )
        series = load_prices(data.path, data.date_column, data.price_column)
        run.log_data_source(series)
        prices = series.prices
        run.set_description(
            f"Refit of run {evaluated_run_id} on all {len(prices)} bars of "
            f"`{series.path.name}` up to {prices.index[-1]:%Y-%m-%d}, for {epochs} epochs (the "
            "epoch early stopping chose there). No data is held out, so this run has no test "
            f"metrics: judge the configuration by run {evaluated_run_id}'s, forecast with this."
        )
        log.info(
            "refit on all %d bars to %s for %d epochs (run %s's best epoch)",
            len(prices),
            f"{prices.index[-1]:%Y-%m-%d}",
            epochs,
            evaluated_run_id,
        )
        with Seq2SeqForecaster(
            window=window,
            model=settings.model,
            train=replace(settings.train, epochs=epochs, refit_full=False),
            target=data.target,
            seed=settings.seed,
            callbacks=[run],
        ) as model:
            model.fit(prices)
            last = len(prices) - 1
            forecast = model.predict(prices, np.array([last]))
            run.log_state(
                StreamState.of_forecast(forecast, prices, -1),
                {
                    "layout": "per layer k: c (cell state) then h (hidden state), each "
                    "[1, num_units]",
                    "num_layers": settings.model.num_layers,
                    "num_units": settings.model.num_units,
                    "window": {
                        "split": "all",
                        "origin_date": f"{prices.index[last]:%Y-%m-%d}",
                        "origin_price": float(prices.iloc[last]),
                        "first_input_date": f"{prices.index[last - window.lookback + 1]:%Y-%m-%d}",
                        "lookback": window.lookback,
                        "horizon": window.horizon,
                        "encoder_initial_state": "zeros",
                    },
                },
            )
            with tempfile.TemporaryDirectory() as tmp:
                exported = model.export(
                    Path(tmp) / "exported_model",
                    price_column=series.price_column,
                    date_column=series.date_column,
                )
                recent = prices.iloc[-(window.lookback + 1) :]
                example = recent.rename(series.price_column).rename_axis(data.date_column)
                run.log_model(exported, example.reset_index())
    link_refit(tracking.uri, evaluated_run_id, run.run_id)
    log.info("refit run %s (of run %s)", run.run_id, evaluated_run_id)
    return run.run_id


def deploy(cfg: DictConfig, evaluated_run_id: str, tags: dict[str, str] | None = None) -> str:
    """What `train.refit_full` and `train.register_as` ask for, after run `evaluated_run_id`:
    refit it, register the model to forecast with; return that model's run id."""
    from forecaster.tracking import connect
    from forecaster.tracking.registry import evaluated_run, register

    train = cfg.train
    run_id = evaluated_run_id
    if train.refit_full:
        # best_epoch is 0 only when nothing validated: then every configured epoch.
        epochs = evaluated_run(cfg.tracking.uri, evaluated_run_id).best_epoch or train.epochs
        run_id = refit_full(cfg, evaluated_run_id, epochs, tags)
    if train.register_as:
        connect(cfg.tracking.uri)
        register(run_id, train.register_as, train.register_alias)
    return run_id


def deploy_sweep(sweep_cfg: DictConfig, best_run_id: str) -> str:
    """A sweep's `deploy`: its best run, with the configuration that run logged."""
    from forecaster.tracking.registry import evaluated_run

    logged = evaluated_run(sweep_cfg.tracking.uri, best_run_id).config_yaml
    cfg = OmegaConf.merge(OmegaConf.structured(config.TrainAppConf), OmegaConf.create(logged))
    # Where it logs and registers comes from the sweep's command, as for every job.
    cfg = OmegaConf.merge(
        cfg,
        {
            "tracking": OmegaConf.to_container(sweep_cfg.tracking),
            "train": {
                "refit_full": sweep_cfg.train.refit_full,
                "register_as": sweep_cfg.train.register_as,
                "register_alias": sweep_cfg.train.register_alias,
            },
        },
    )
    return deploy(cfg, best_run_id)

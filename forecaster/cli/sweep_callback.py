"""Hydra callback: a sweep (`-m`) is one MLflow parent run with a child run per job.

The parent is created in the launching process before any job starts and summarised when all
have ended; each job finds it by the sweep directory (`tracking.sweeps.find_sweep`), so this
works with any launcher, in-process, parallel or on a cluster, as long as jobs reach the
tracking store. When all jobs have ended, the best run is refit and registered if the sweep asks
(`train.refit_full`, `train.register_as`), and the terminal shows the best run and where to look.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def label_job_logs(label: str) -> None:
    """Start every log line of this job with `[label]`: parallel jobs' lines interleave on one
    terminal, and each must say whose it is."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_Labelled(label, handler.formatter or logging.Formatter()))


class _Labelled(logging.Formatter):
    def __init__(self, label: str, inner: logging.Formatter) -> None:
        super().__init__()
        self.label, self.inner = label, inner

    def format(self, record: logging.LogRecord) -> str:
        return f"[{self.label}]{self.inner.format(record)}"


def sweep_dir(directory: str) -> str:
    """The sweep's identity: its output directory (`hydra.sweep.dir`), absolute."""
    return str(Path(directory).absolute())


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent_run_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from forecaster.tracking.sweeps import start_sweep  # MLflow: only when a sweep starts

        self.parent_run_id = start_sweep(
            config.tracking.uri,
            config.tracking.experiment_name,
            sweep_dir=sweep_dir(config.hydra.sweep.dir),
            overrides=list(config.hydra.overrides.task),
            artifact_location=config.tracking.artifact_location,
        )

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_run_id is not None:
            from forecaster.tracking.sweeps import finish_sweep

            objective = config.objective
            result = finish_sweep(
                config.tracking.uri, self.parent_run_id, objective.metric, objective.direction
            )
            best = result.best
            if best is not None and (config.train.refit_full or config.train.register_as):
                from forecaster.cli.refit import deploy_sweep

                deploy_sweep(config, best["run_id"])
            # Printed, not logged: the summary is for the person at the terminal.
            print(result.report(), flush=True)

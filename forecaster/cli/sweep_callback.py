"""Hydra callback: a sweep (`-m`) is one MLflow parent run with a child run per job.

The parent is created in the launching process before any job starts and summarised when all
have ended (meanwhile, on a terminal, a bar counts the jobs that have ended); each job finds it
by the sweep directory (`tracking.sweeps.find_sweep`), so this works with any launcher,
in-process, parallel or on a cluster, as long as jobs reach the tracking store. A sweep stopped
before its end (Ctrl-C, SIGTERM, an error in the launcher) never reaches `on_multirun_end`: its
parent is then summarised and ended KILLED, with the reason, as the launching process exits.
When all jobs have ended, the best run is refit and registered if the sweep asks
(`train.refit_full`, `train.register_as`), and the terminal shows the best run and where to
look.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from forecaster.cli import signals


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


def job_count(config: DictConfig) -> int | None:
    """How many jobs the sweep will launch: Optuna's `n_trials`, or the grid the basic sweeper
    expands from the sweep's overrides and `hydra.sweeper.params`; None when unknown."""
    sweeper = config.hydra.sweeper
    if sweeper.get("n_trials") is not None:
        return int(sweeper.n_trials)
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = [f"{key}={value}" for key, value in (sweeper.get("params") or {}).items()]
        overrides = params + list(config.hydra.overrides.task)
        batches = BasicSweeper.split_arguments(
            OverridesParser.create().parse_overrides(overrides), None
        )
    except Exception:  # noqa: BLE001 (another sweeper's syntax: count without a total)
        return None
    return sum(len(batch) for batch in batches)


class MlflowSweepCallback(Callback):
    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.config: DictConfig | None = None
        self.progress = None  # the jobs' bar, on a terminal

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from forecaster.tracking.sweeps import start_sweep  # MLflow: only when a sweep starts

        self.parent_run_id = start_sweep(
            config.tracking.uri,
            config.tracking.experiment_name,
            sweep_dir=sweep_dir(config.hydra.sweep.dir),
            overrides=list(config.hydra.overrides.task),
            artifact_location=config.tracking.artifact_location,
        )
        self.config = config
        atexit.register(self._end_unfinished)
        from forecaster.cli.progress import JobProgress
        from forecaster.tracking.sweeps import ended_jobs

        uri, parent = config.tracking.uri, self.parent_run_id
        self.progress = JobProgress(job_count(config), lambda: ended_jobs(uri, parent))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._close_progress()
        if self.parent_run_id is not None:
            from forecaster.tracking.sweeps import finish_sweep

            objective = config.objective
            result = finish_sweep(
                config.tracking.uri, self.parent_run_id, objective.metric, objective.direction
            )
            self.parent_run_id = None
            best = result.best
            if best is not None and (config.train.refit_full or config.train.register_as):
                from forecaster.cli.refit import deploy_sweep

                deploy_sweep(config, best["run_id"])
            # Printed, not logged: the summary is for the person at the terminal.
            print(result.report(), flush=True)

    def __getstate__(self) -> dict[str, Any]:
        # Launchers pickle the callbacks with every job (joblib, Ray): the bar, its thread and
        # lock stay in the launching process.
        return self.__dict__ | {"progress": None}

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()
            self.progress = None

    def _end_unfinished(self) -> None:
        self._close_progress()
        if self.parent_run_id is None:
            return
        from forecaster.tracking.sweeps import finish_sweep

        cause = f"{signals.received[0]} received" if signals.received else "an error"
        objective = self.config.objective
        finish_sweep(
            self.config.tracking.uri,
            self.parent_run_id,
            objective.metric,
            objective.direction,
            interrupted=f"the sweep stopped before all its jobs had run ({cause}; see the output "
            "of the command that launched it)",
        )
        self.parent_run_id = None

"""Sweeps in MLflow: one parent run per sweep, a child run per job, a summary at the end.

The parent is created in the launching process before any job starts (which also creates a
fresh SQLite store's schema and the experiment before parallel jobs could race to); each job,
in any process or on any machine that reaches the tracking store, finds it by the sweep
directory; when all jobs have ended the parent gets the table of every child and the best one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from forecaster.evaluation.plots import sweep_figure
from forecaster.tracking.provenance import shown_overrides
from forecaster.tracking.registry import BEST_RUN_TAG, OBJECTIVE_TAG
from forecaster.tracking.run import default_artifact_location, experiment_id
from forecaster.tracking.store import FAILURE_REASON_TAG, open_store, process_tags

log = logging.getLogger(__name__)

SWEEP_DIR_TAG = "forecaster.sweep_dir"
# Jobs find their parent by a hash of the sweep directory: a directory's own characters (an
# apostrophe) could not be quoted safely in a search filter.
SWEEP_KEY_TAG = "forecaster.sweep_key"
SWEEP_OVERRIDES_TAG = "sweep.overrides"  # JSON list of the sweep command's overrides
BEST_BASELINE_TAG = "test_best_baseline"  # on a run: its best baseline on the test part
SUMMARY_COLUMNS = (
    "best_val_loss",
    "test_rmse",
    "naive_test_rmse",
    "test_rmse_skill",
    "test_skill_vs_best_baseline",
    "test_mase",
    "test_directional_accuracy",
)


def start_sweep(
    uri: str,
    experiment_name: str,
    *,
    sweep_dir: str,
    overrides: list[str],
    artifact_location: str | None = None,
) -> str:
    """Create a sweep's parent run, left RUNNING until `finish_sweep`; return its id.

    Called in the launching process before any job starts, which also creates a fresh SQLite
    store's schema and the experiment before parallel jobs could race to.
    """
    client = open_store(uri)
    run = client.create_run(
        experiment_id(client, experiment_name, artifact_location or default_artifact_location(uri)),
        run_name=f"sweep {' '.join(shown_overrides(overrides))}".strip()[:250],
        tags={
            SWEEP_DIR_TAG: sweep_dir,
            SWEEP_KEY_TAG: sweep_key(sweep_dir),
            SWEEP_OVERRIDES_TAG: json.dumps(overrides),
        }
        | process_tags(),
    )
    client.log_text(run.info.run_id, "\n".join(overrides) + "\n", "sweep/overrides.txt")
    log.info("sweep parent run %s (%s)", run.info.run_id, sweep_dir)
    return run.info.run_id


def sweep_key(sweep_dir: str) -> str:
    return hashlib.sha256(sweep_dir.encode()).hexdigest()[:32]


def find_sweep(uri: str, experiment_name: str, sweep_dir: str) -> tuple[str, list[str]] | None:
    """The parent run of the sweep writing to `sweep_dir`, and the sweep's overrides (how a job,
    in any process or on any machine that reaches the tracking server, finds its parent)."""
    client = open_store(uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{SWEEP_KEY_TAG}` = '{sweep_key(sweep_dir)}'",
        max_results=1,
    )
    if not runs:
        return None
    return runs[0].info.run_id, json.loads(runs[0].data.tags.get(SWEEP_OVERRIDES_TAG, "[]"))


def ended_jobs(uri: str, parent_run_id: str) -> int:
    """How many of the sweep's jobs have ended (their runs no longer RUNNING), whichever
    process or machine ran them."""
    client = open_store(uri)
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=10_000,
    )
    return sum(run.info.status not in ("RUNNING", "SCHEDULED") for run in children)


@dataclass(frozen=True)
class SweepResult:
    """How a sweep ended: every job's row (best first), and where to look."""

    uri: str
    experiment_id: str
    parent_run_id: str
    parent_run_name: str
    objective: str
    summary: pd.DataFrame  # one row per job, sorted by the objective, best first

    @property
    def best(self) -> pd.Series | None:
        """The best finished job's row; None when every job failed."""
        finished = self.summary[self.summary["status"] == "FINISHED"]
        finished = finished.dropna(subset=[self.objective])
        return None if finished.empty else finished.iloc[0]

    def report(self) -> str:
        """What the terminal shows when the sweep ends: jobs, the best run, where to look."""
        failed = int((self.summary["status"] != "FINISHED").sum())
        lines = [
            f"sweep {self.parent_run_id} ({self.parent_run_name}): {len(self.summary)} jobs, "
            f"{failed} failed"
        ]
        best = self.best
        if best is None:
            lines.append("no job finished: see each run's failure_reason")
        else:
            lines.append(
                f"best run {best['run_name']} ({best['run_id']}): {self.objective} "
                f"{best[self.objective]:.6g}; test rmse {best['test_rmse']:.4f} vs naive "
                f"{best['naive_test_rmse']:.4f} (skill {best['test_rmse_skill']:.3f}), "
                f"mae skill vs the best baseline ({best[BEST_BASELINE_TAG] or '-'}) "
                f"{best['test_skill_vs_best_baseline']:.3f}"
            )
        lines.append(f"MLflow UI: {ui_url(self.uri, self.experiment_id, self.parent_run_id)}")
        return "\n".join(lines)


def ui_url(uri: str, experiment_id: str, run_id: str) -> str:
    """Where a run's page is: on the server itself, or what `mlflow ui` serves for a file store."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}"
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/{page}"
    return f"http://127.0.0.1:5000/{page} after `mlflow ui --backend-store-uri {uri}`"


def finish_sweep(
    uri: str,
    parent_run_id: str,
    objective: str,
    direction: str = "minimize",
    interrupted: str | None = None,
) -> SweepResult:
    """Summarise the children on the parent (table, plot, best child by `objective`) and end it:
    FINISHED, FAILED when no child finished, KILLED with the reason `interrupted` when the
    sweep stopped before all its jobs had run. Children whose process died are ended first."""
    client = open_store(uri)  # ends the runs of jobs whose worker was killed, with the reason
    parent = client.get_run(parent_run_id)
    columns = list(dict.fromkeys([objective, *SUMMARY_COLUMNS]))
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        max_results=10_000,
    )
    summary = pd.DataFrame(
        [
            {
                "run_id": run.info.run_id,
                "run_name": run.info.run_name,
                "status": run.info.status,
                **{name: run.data.metrics.get(name, np.nan) for name in columns},
                BEST_BASELINE_TAG: run.data.tags.get(BEST_BASELINE_TAG, ""),
                FAILURE_REASON_TAG: run.data.tags.get(FAILURE_REASON_TAG, ""),
            }
            for run in children
        ],
        columns=["run_id", "run_name", "status", *columns, BEST_BASELINE_TAG, FAILURE_REASON_TAG],
    ).sort_values(
        objective, ascending=direction != "maximize", na_position="last", ignore_index=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        summary.to_csv(Path(tmp) / "summary.csv", index=False)
        client.log_artifacts(parent_run_id, tmp, "sweep")
    result = SweepResult(
        uri, parent.info.experiment_id, parent_run_id, parent.info.run_name, objective, summary
    )
    if not summary.empty:
        figure = sweep_figure(summary, objective, direction)
        client.log_figure(parent_run_id, figure, "sweep/summary.png")
        plt.close(figure)
    client.log_metric(parent_run_id, "sweep_jobs", len(summary))
    client.log_metric(
        parent_run_id, "sweep_failed_jobs", int((summary["status"] != "FINISHED").sum())
    )
    if interrupted is not None:
        client.set_tag(parent_run_id, FAILURE_REASON_TAG, interrupted)
    best = result.best
    if best is None:
        client.set_terminated(parent_run_id, "KILLED" if interrupted else "FAILED")
        return result
    client.set_tag(parent_run_id, BEST_RUN_TAG, best["run_id"])
    client.set_tag(parent_run_id, "best_run_name", best["run_name"])
    client.set_tag(parent_run_id, OBJECTIVE_TAG, f"{objective} ({direction})")
    for name in columns:
        if np.isfinite(best[name]):
            client.log_metric(parent_run_id, name, float(best[name]))
    client.set_terminated(parent_run_id, "KILLED" if interrupted else "FINISHED")
    return result

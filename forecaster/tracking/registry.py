"""Which model to forecast with: the MLflow model registry, and picking a logged model by intent.

`register` puts a run's model under a registered name and moves an alias (`champion` by default)
to the new version, so `models:/<name>@champion` always means the model to deploy. `pick_model`
turns what a user says (`latest`, the best run of a sweep, a registry URI, a run id) into the
model to load, the run it belongs to, and one line saying which run was picked and why.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecaster.errors import ConfigError
from forecaster.tracking.pyfunc import MODEL_NAME

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"
REFIT_OF_TAG = "forecaster.refit_of"  # on a refit run: the evaluated run it refits
REFIT_RUN_TAG = "forecaster.refit_run_id"  # on an evaluated run: its refit on all data
BEST_RUN_TAG = "best_run_id"  # on a sweep's parent: its best child by the objective
OBJECTIVE_TAG = "objective"  # on a sweep's parent: the metric (and direction) it picked by
_RUN_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    alias: str | None
    run_id: str

    @property
    def uri(self) -> str:
        """The URI that follows the alias (or names this version when there is none)."""
        return f"models:/{self.name}@{self.alias}" if self.alias else self.version_uri

    @property
    def version_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def register(run_id: str, name: str, alias: str | None = DEFAULT_ALIAS) -> RegisteredVersion:
    """Register the model of run `run_id` as a new version of `name`; move `alias` to it."""
    client = MlflowClient()
    run = client.get_run(run_id)
    # MLflow 3 keeps a model beside the run's artifacts, as a logged model of its own.
    [model] = client.search_logged_models(
        [run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'",
    )
    version = mlflow.register_model(f"models:/{model.model_id}", name)
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    registered = RegisteredVersion(name, str(version.version), alias, run_id)
    log.info(
        "registered run %s as %s%s",
        run_id,
        registered.version_uri,
        f" and moved alias {alias!r} to it ({registered.uri})" if alias else "",
    )
    return registered


@dataclass(frozen=True)
class PickedModel:
    model_uri: str  # what to load
    run_id: str  # the run whose model it is (and whose states a warm start reads)
    reason: str  # which run was picked, and why


def pick_model(
    experiment_name: str,
    *,
    run_id: str | None = None,
    sweep: str | None = None,
    pick: str = "best",
    model_uri: str | None = None,
) -> PickedModel:
    """The model a `predict` selector names; exactly one of `run_id`, `sweep`, `model_uri`.

    `run_id=latest`: the newest finished run of the experiment that logged a model.
    `sweep=<parent run id or name>` with `pick=best`: the sweep's best run by its objective, or
    that run's refit on all data when there is one (the refit is the model to forecast with).
    `model_uri=models:/<name>@<alias>` (or `/<version>`, or `runs:/...`): that model.
    """
    selectors = {"run_id": run_id, "sweep": sweep, "model_uri": model_uri}
    given = [key for key, value in selectors.items() if value]
    if len(given) != 1:
        raise ConfigError(
            "say which model to use with one of: run_id=<MLflow run id> (or run_id=latest), "
            "sweep=<sweep parent run id or name> pick=best, model_uri=models:/<name>@champion"
            + (f"; got {given}" if given else "")
        )
    client = MlflowClient()
    if model_uri:
        return _by_uri(client, model_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ConfigError(
            f"no MLflow experiment {experiment_name!r} at {mlflow.get_tracking_uri()}: train a "
            "model first, or point tracking.uri / tracking.experiment_name at the store that "
            "holds it"
        )
    if sweep:
        return _best_of_sweep(client, experiment.experiment_id, sweep, pick)
    if run_id == "latest":
        return _latest(client, experiment.experiment_id, experiment_name)
    run = _check_exported(_get_run(client, run_id, "run_id"), "run_id")
    return PickedModel(f"runs:/{run_id}/{MODEL_NAME}", run_id, f"run {_describe(run)}")


def _by_uri(client: MlflowClient, model_uri: str) -> PickedModel:
    if model_uri.startswith("runs:/"):
        run_id = model_uri[len("runs:/") :].split("/", 1)[0]
        run = _check_exported(_get_run(client, run_id, "model_uri"), "model_uri")
        return PickedModel(model_uri, run_id, f"run {_describe(run)}")
    match = re.fullmatch(r"models:/([^@/]+)(?:@([^/]+)|/(\d+))", model_uri)
    if match is None:
        raise ConfigError(
            f"model_uri={model_uri!r}: expected models:/<name>@<alias>, models:/<name>/<version> "
            "or runs:/<run id>/model"
        )
    name, alias, number = match.groups()
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except MlflowException as error:
        names = [m.name for m in client.search_registered_models(max_results=50)]
        raise ConfigError(
            f"model_uri={model_uri}: {error.message.splitlines()[0]} in the tracking store "
            f"{mlflow.get_tracking_uri()}; its registered models: {names or 'none'}. Fix: "
            "register one with train.register_as=<name>, or check the name and the alias or "
            "version, and that tracking.uri (or MLFLOW_TRACKING_URI) names the store that "
            "holds it."
        ) from None
    run = client.get_run(version.run_id)
    return PickedModel(
        model_uri,
        version.run_id,
        f"{model_uri} is version {version.version} of {name!r}, run {_describe(run)}",
    )


def _latest(client: MlflowClient, experiment_id: str, experiment_name: str) -> PickedModel:
    models = client.search_logged_models(
        [experiment_id],
        order_by=[{"field_name": "creation_timestamp", "ascending": False}],
        max_results=100,
    )
    for model in models:
        if model.name != MODEL_NAME or not model.source_run_id:
            continue
        run = client.get_run(model.source_run_id)
        if run.info.status == "FINISHED":
            return PickedModel(
                f"runs:/{run.info.run_id}/{MODEL_NAME}",
                run.info.run_id,
                f"latest: run {_describe(run)}, the newest finished run with a model in "
                f"experiment {experiment_name!r}",
            )
    raise ConfigError(
        f"run_id=latest: no finished run with a logged model in experiment {experiment_name!r} "
        f"at {mlflow.get_tracking_uri()}. Fix: train one (`python -m forecaster train`), or "
        "point tracking.uri at the store that holds your runs."
    )


def _best_of_sweep(client: MlflowClient, experiment_id: str, sweep: str, pick: str) -> PickedModel:
    if pick != "best":
        raise ConfigError(f"pick={pick!r}: the one way to pick a sweep's run is pick=best")
    if _RUN_ID.fullmatch(sweep):
        parent = _get_run(client, sweep, "sweep")
    else:
        parents = client.search_runs(
            [experiment_id],
            filter_string=f"attributes.run_name = '{sweep}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not parents:
            raise ConfigError(
                f"sweep={sweep!r}: no run of that id or name. Fix: give the sweep's parent run "
                "id, or its name as the MLflow UI shows it (e.g. 'sweep model.num_units=32,64')."
            )
        parent = parents[0]
    best_id = parent.data.tags.get(BEST_RUN_TAG)
    if not best_id:
        raise ConfigError(
            f"sweep={sweep!r}: run {_describe(parent)} has no best run (tag {BEST_RUN_TAG}): it "
            "is not a sweep's parent, the sweep has not ended, or every job failed"
        )
    best = client.get_run(best_id)
    objective = parent.data.tags.get(OBJECTIVE_TAG, "the objective")
    reason = f"best of sweep {_describe(parent)} by {objective}: run {_describe(best)}"
    refit_id = best.data.tags.get(REFIT_RUN_TAG)
    if refit_id:
        refit = client.get_run(refit_id)
        return PickedModel(
            f"runs:/{refit_id}/{MODEL_NAME}",
            refit_id,
            f"{reason}; forecasting with its refit on all data, run {_describe(refit)}",
        )
    return PickedModel(f"runs:/{best_id}/{MODEL_NAME}", best_id, reason)


def _get_run(client: MlflowClient, run_id: str, key: str):
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(
            f"{key}={run_id}: {error.message.splitlines()[0]} in the tracking store "
            f"{mlflow.get_tracking_uri()}. Fix: check it, and that tracking.uri (or "
            "MLFLOW_TRACKING_URI) names the store that holds it; run_id=latest takes the newest."
        ) from None


def _check_exported(run, key: str):
    """`run`, unless its training logged no model on purpose (tag `model.exported=false`)."""
    if run.data.tags.get("model.exported") == "false":
        reason = run.data.tags.get("model.not_exported_because", "")
        raise ConfigError(
            f"{key}={run.info.run_id}: that run logged no model to forecast with ({reason}). "
            "Fix: pick a run that exported one, or train again without covariates."
        )
    return run


def _describe(run) -> str:
    return f"{run.info.run_id} ({run.info.run_name})"


@dataclass(frozen=True)
class EvaluatedRun:
    """What a refit needs of the run it refits."""

    run_id: str
    run_name: str
    best_epoch: int  # 0 when nothing validated
    config_yaml: str  # the resolved config the run logged


def evaluated_run(uri: str, run_id: str) -> EvaluatedRun:
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        config_yaml = Path(client.download_artifacts(run_id, "config.yaml", tmp)).read_text()
    return EvaluatedRun(
        run_id,
        run.info.run_name or run_id,
        int(run.data.metrics.get("best_epoch", 0)),
        config_yaml,
    )


def link_refit(uri: str, evaluated_run_id: str, refit_run_id: str) -> None:
    """Tag the evaluated run with its refit (the refit carries `REFIT_OF_TAG` from its start)."""
    MlflowClient(uri).set_tag(evaluated_run_id, REFIT_RUN_TAG, refit_run_id)

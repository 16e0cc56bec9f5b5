"""The model to forecast with: refit on every bar, registered under a name, picked by selector.

One tiny `train train.refit_full=true train.register_as=...` against a local SQLite store serves
the module: an evaluated run, its refit, and a registered version with the `champion` alias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY, compose_config, compose_train_config
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from forecaster.cli.predict import predict
from forecaster.cli.train import train
from forecaster.errors import ConfigError
from forecaster.tracking.registry import REFIT_OF_TAG, REFIT_RUN_TAG, register

pytestmark = pytest.mark.slow

NAME = "synthetic-daily"


@dataclass(frozen=True)
class Deployed:
    uri: str
    client: MlflowClient
    evaluated: Run
    refit: Run


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Deployed:
    store = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    overrides = [*TINY, f"tracking.uri={uri}", "train.refit_full=true", "train.patience=1"]
    train(compose_train_config([*overrides, f"train.register_as={NAME}", "train.epochs=4"]))
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    [evaluated] = [r for r in runs if REFIT_OF_TAG not in r.data.tags]
    [refit] = [r for r in runs if REFIT_OF_TAG in r.data.tags]
    return Deployed(uri, client, evaluated, refit)


def predict_config(deployed: Deployed, *overrides: str):
    return compose_config("predict", ["data=synthetic", f"tracking.uri={deployed.uri}", *overrides])


def test_the_refit_is_its_own_run_on_every_bar_linked_to_the_evaluated_one(deployed, tmp_path):
    evaluated, refit, client = deployed.evaluated, deployed.refit, deployed.client
    assert evaluated.info.status == refit.info.status == "FINISHED"
    assert refit.data.tags[REFIT_OF_TAG] == evaluated.info.run_id
    assert evaluated.data.tags[REFIT_RUN_TAG] == refit.info.run_id
    # As many epochs as early stopping chose, no validation, no test metrics to mistake for
    # an evaluation.
    best_epoch = int(evaluated.data.metrics["best_epoch"])
    assert refit.data.params["train.epochs"] == str(best_epoch)
    assert len(client.get_metric_history(refit.info.run_id, "train_loss")) == best_epoch
    assert not client.get_metric_history(refit.info.run_id, "val_loss")
    assert "test_rmse" not in refit.data.metrics
    # Trained up to the last bar, and its state is the state after that bar.
    last_date = pd.read_csv(REPO_ROOT / "data/synthetic.csv")["Date"].iloc[-1]
    assert refit.data.tags["data.last_date"] == last_date
    local = client.download_artifacts(refit.info.run_id, "states", str(tmp_path))
    description = json.loads(Path(local, "final_states.json").read_text())
    assert description["window"]["origin_date"] == last_date
    assert evaluated.info.run_id in refit.data.tags["mlflow.note.content"]


def test_the_champion_alias_points_at_the_refit_and_moves_with_each_registration(deployed):
    client = deployed.client
    mlflow.set_tracking_uri(deployed.uri)
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert champion.run_id == deployed.refit.info.run_id
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    prices = pd.read_csv(REPO_ROOT / "data/synthetic.csv", parse_dates=["Date"])
    forecast = model.predict(prices[["Date", "Adj Close"]].tail(30))
    assert list(forecast["step"]) == [1, 2, 3, 4, 5]

    again = register(deployed.evaluated.info.run_id, NAME)
    assert int(again.version) == int(champion.version) + 1
    assert client.get_model_version_by_alias(NAME, "champion").run_id == again.run_id
    register(deployed.refit.info.run_id, NAME)  # back to the refit, for the other tests


def test_predict_selectors_say_which_run_they_picked(deployed, tmp_path, capsys):
    refit_id, evaluated_id = deployed.refit.info.run_id, deployed.evaluated.info.run_id
    latest = predict(predict_config(deployed, "run_id=latest", f"output={tmp_path}/latest.csv"))
    printed = capsys.readouterr().out
    assert f"latest: run {refit_id}" in printed  # the refit ended last
    champion = predict(
        predict_config(
            deployed, f"model_uri=models:/{NAME}@champion", f"output={tmp_path}/champion.csv"
        )
    )
    printed = capsys.readouterr().out
    assert f"models:/{NAME}@champion is version" in printed and f"run {refit_id}" in printed
    pd.testing.assert_frame_equal(latest, champion)
    evaluated = predict(
        predict_config(deployed, f"run_id={evaluated_id}", f"output={tmp_path}/evaluated.csv")
    )
    assert f"run {evaluated_id}" in capsys.readouterr().out
    # The refit saw the last bars, the evaluated model did not: they forecast differently.
    assert not evaluated["forecast"].equals(champion["forecast"])


def test_predict_never_overwrites_an_output(deployed, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_id = deployed.evaluated.info.run_id
    predict(predict_config(deployed, f"run_id={run_id}"))
    predict(predict_config(deployed, f"run_id={run_id}", "warm_start=true"))
    written = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    assert written == [f"{run_id}_2019-08-30_cold.csv", f"{run_id}_2019-08-30_warm.csv"]
    before = (tmp_path / "predictions" / written[0]).read_text()
    with pytest.raises(ConfigError, match="already exists.*overwrite=true"):
        predict(predict_config(deployed, f"run_id={run_id}"))
    assert (tmp_path / "predictions" / written[0]).read_text() == before
    predict(predict_config(deployed, f"run_id={run_id}", "overwrite=true"))


def test_selectors_that_name_nothing_say_what_exists(deployed):
    with pytest.raises(ConfigError, match=f"its registered models: \\['{NAME}'\\]"):
        predict(predict_config(deployed, "model_uri=models:/nope@champion"))
    with pytest.raises(ConfigError, match="has no best run"):
        predict(predict_config(deployed, f"sweep={deployed.evaluated.info.run_id}"))
    with pytest.raises(ConfigError, match="one of: run_id"):
        predict(predict_config(deployed, "run_id=latest", f"model_uri=models:/{NAME}@champion"))
    with pytest.raises(ConfigError, match="not found in the tracking store"):
        predict(predict_config(deployed, "run_id=0123456789abcdef0123456789abcdef"))

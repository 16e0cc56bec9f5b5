"""`train data=panel` end to end: one global model over a few bundled tickers, scored per
series, logged, and served for trained and new tickers by `predict` and the pyfunc model."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY, compose_config, compose_train_config
from mlflow.tracking import MlflowClient
from test_predict import readme_python_blocks

from forecaster.cli.predict import predict
from forecaster.cli.train import train
from forecaster.errors import ConfigError

pytestmark = pytest.mark.slow

TICKERS = "data.tickers=[AAPL,EURUSD,WTI]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    overrides = [o for o in TINY if not o.startswith("data=")]
    metrics = train(
        compose_train_config(
            [
                *overrides,
                "data=panel",
                TICKERS,
                "window.stride=5",
                "model.ticker_embedding=3",
                "model.shrinkage=per_series",
                "train.baselines=[naive,drift]",
                f"tracking.uri={uri}",
            ]
        )
    )
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("forecaster")
    return uri, client.search_runs([experiment.experiment_id])[0], metrics


def test_a_global_model_is_trained_on_every_series_and_scored_on_each(trained):
    uri, run, metrics = trained
    assert run.info.status == "FINISHED"
    assert 0.5 < metrics["panel_test_gmean_mae_vs_naive"] < 1.5
    assert metrics["panel_naive_test_gmean_mae_vs_naive"] == 1.0
    assert "panel_drift_test_gmean_mae_vs_naive" in run.data.metrics
    assert run.data.tags["data.tickers"] == "3"
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path="panel/test_per_series.csv", tracking_uri=uri
        )
    )
    assert set(table["ticker"]) == {"AAPL", "EURUSD", "WTI"}
    shrinkage = table.loc[table["model"] == "model", "shrinkage"]
    assert ((shrinkage >= 0) & (shrinkage <= 1)).all()


def test_predict_forecasts_trained_tickers_and_a_new_one_cold(trained, tmp_path, capsys):
    uri, run, _ = trained
    common = [f"run_id={run.info.run_id}", f"tracking.uri={uri}"]
    panel = predict(
        compose_config(
            "predict",
            ["data=panel", "data.tickers=[AAPL,WTI,MSFT]", *common, f"output={tmp_path}/p.csv"],
        )
    )
    assert list(panel["ticker"].unique()) == ["AAPL", "WTI", "MSFT"]
    assert panel.groupby("ticker")["trained"].first().to_dict() == {
        "AAPL": True,
        "MSFT": False,
        "WTI": True,
    }
    assert np.isfinite(panel["forecast"]).all() and len(panel) == 3 * 5
    single = predict(compose_config("predict", ["data=sp500", *common, f"output={tmp_path}/s.csv"]))
    assert "ticker 'sp500' (new: scaled on its own prices)" in capsys.readouterr().out
    assert np.isfinite(single["forecast"]).all()
    with pytest.raises(ConfigError, match="warm_start=true is for single-series models"):
        predict(compose_config("predict", ["data=panel", *common, "warm_start=true"]))


def test_the_pyfunc_model_takes_a_ticker_column(trained, tmp_path):
    uri, run, _ = trained
    cli = predict(
        compose_config(
            "predict",
            [
                "data=panel",
                "data.tickers=[AAPL]",
                f"run_id={run.info.run_id}",
                f"tracking.uri={uri}",
                f"output={tmp_path}/p.csv",
            ],
        )
    )
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    panel = compose_config("predict", ["data=panel"]).data
    frame = pd.read_csv(panel.path)
    aapl = frame[frame["ticker"] == "AAPL"].tail(40)[["date", "price", "ticker"]]
    aapl["date"] = pd.to_datetime(aapl["date"])
    known = model.predict(aapl)
    new = model.predict(aapl.assign(ticker="NEWCO"))
    np.testing.assert_allclose(known["forecast"], cli["forecast"], rtol=1e-12)
    assert len(new) == 5 and np.isfinite(new["forecast"]).all()


def test_the_readme_global_model_snippet_runs(trained, monkeypatch):
    uri, run, _ = trained
    monkeypatch.chdir(REPO_ROOT)
    mlflow.set_tracking_uri(uri)
    [block] = readme_python_blocks("## One model over many tickers")
    namespace: dict = {}
    exec(compile(block.replace("<run_id>", run.info.run_id), "README.md", "exec"), namespace)
    assert len(namespace["trained"]) == len(namespace["new"]) == 5

"""`predict` end to end: a trained run's model and states, cold and warm, CLI and pyfunc."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY, compose_config, compose_train_config
from mlflow.tracking import MlflowClient

from forecaster import tracking
from forecaster.cli.predict import predict
from forecaster.cli.train import train
from forecaster.errors import ConfigError, DataError
from forecaster.serving import OnlineForecaster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run on the synthetic data, dated on the NYSE calendar: (tracking URI,
    run id)."""
    store = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    overrides = [*TINY, f"tracking.uri={uri}", "model.num_layers=2", "data.calendar=XNYS"]
    train(compose_train_config(overrides))
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("forecaster")
    return uri, client.search_runs([experiment.experiment_id])[0].info.run_id


def predict_config(*overrides: str):
    return compose_config("predict", ["data=synthetic", *overrides])


def test_predict_cold_and_warm(trained, tmp_path, capsys):
    uri, run_id = trained
    cold = predict(
        predict_config(f"run_id={run_id}", f"tracking.uri={uri}", f"output={tmp_path}/cold.csv")
    )
    warm = predict(
        predict_config(
            f"run_id={run_id}",
            f"tracking.uri={uri}",
            "warm_start=true",
            f"output={tmp_path}/warm.csv",
        )
    )
    printed = capsys.readouterr().out
    assert "cold start on the last 20 bars" in printed
    assert "carried over 5 bars" in printed  # the last test window's origin is 5 bars back
    for frame, name in ((cold, "cold"), (warm, "warm")):
        written = pd.read_csv(tmp_path / f"{name}.csv", parse_dates=["date"])
        assert list(written.columns) == ["step", "date", "forecast"]
        np.testing.assert_allclose(written["forecast"], frame["forecast"])
        # The data ends on Friday 2019-08-30; Monday 2019-09-02 is Labor Day, a NYSE holiday.
        assert list(written["date"]) == list(
            pd.to_datetime(["2019-09-03", "2019-09-04", "2019-09-05", "2019-09-06", "2019-09-09"])
        )
    # The warm state saw 5 more bars than the cold one: different forecasts.
    assert not np.allclose(cold["forecast"], warm["forecast"], rtol=1e-9)

    # Warm start equals one pass from zeros over the last test window plus the 5 bars after it.
    tracking.connect(uri)
    model = tracking.load_model(f"runs:/{run_id}/model")
    state, description = tracking.load_final_states(run_id)
    prices = pd.read_csv(REPO_ROOT / "data/synthetic.csv", parse_dates=["Date"]).set_index("Date")[
        "Adj Close"
    ]
    first_input = pd.Timestamp(description["window"]["first_input_date"])
    start = prices.index.get_loc(first_input) - 1  # the price before the first return
    p = model.preprocessing
    window = prices.iloc[start:]
    returns = np.log(window.to_numpy()[1:] / window.to_numpy()[:-1])
    inputs = p.scaler.transform(returns).astype(np.float32).reshape(1, -1, 1)
    reference = model._run(inputs, None, window)
    np.testing.assert_allclose(warm["forecast"], reference.prices, rtol=1e-5)
    model.close()


def test_predict_needs_a_model_and_a_matching_series(trained, tmp_path):
    uri, run_id = trained
    with pytest.raises(ConfigError, match="say which model to use with one of: run_id="):
        predict(predict_config(f"tracking.uri={uri}"))
    with pytest.raises(DataError, match="which is not in the data"):
        predict(
            predict_config(
                f"run_id={run_id}", f"tracking.uri={uri}", "warm_start=true", "data=sp500"
            )
        )
    other = pd.read_csv(REPO_ROOT / "data/synthetic.csv")
    other[["Close", "Adj Close"]] *= 2
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataError, match="not the series the model was trained on"):
        predict(
            predict_config(
                f"run_id={run_id}",
                f"tracking.uri={uri}",
                "warm_start=true",
                f"data.path={tmp_path / 'other.csv'}",
            )
        )


def test_pyfunc_serves_statefully(trained):
    uri, run_id = trained
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pd.read_csv(REPO_ROOT / "data/synthetic.csv", parse_dates=["Date"])
    history, later = frame.iloc[:-10], frame.iloc[-11:]  # `later` starts at history's last bar
    first = model.predict(history, params={"return_state": True})
    second = model.predict(later, params={"initial_state": first["state"]})
    assert len(first["state"]) == 2 * 2 * 8  # (c, h) x 2 layers x 8 units, once
    expected = tracking.load_model(f"runs:/{run_id}/model")
    prices = frame.set_index("Date")["Adj Close"]
    online = OnlineForecaster.start(expected, prices.iloc[:-10])
    np.testing.assert_allclose(
        second["forecast"], online.update(prices.iloc[-10:]).prices, rtol=1e-5
    )


def test_cli_predict(trained, tmp_path):
    uri, run_id = trained
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "forecaster",
            "predict",
            f"run_id={run_id}",
            "data=synthetic",
            f"tracking.uri={uri}",
            f"output={tmp_path / 'f.csv'}",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "step       date" in result.stdout
    assert (tmp_path / "f.csv").exists()


def readme_python_blocks(*sections: str) -> list[str]:
    """The ```python blocks under the given README headings, in order."""
    text = (REPO_ROOT / "README.md").read_text()
    blocks = []
    for heading in sections:
        body = text.split(heading, 1)[1].split("\n## ", 1)[0]
        blocks += [b.split("```", 1)[0] for b in body.split("```python\n")[1:]]
    return blocks


def test_readme_state_snippets_run(trained, tmp_path, monkeypatch):
    """The README's snippets are runnable as written (with this test's run and store)."""
    uri, run_id = trained
    (tmp_path / "data").symlink_to(REPO_ROOT / "data")
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    blocks = readme_python_blocks(
        "### The logged model (MLflow pyfunc)", "## Working with LSTM state"
    )
    assert len(blocks) == 4
    namespace = {"run_id": run_id}
    for block in blocks:
        code = (
            block.replace("<run_id>", run_id)
            .replace("sqlite:///mlflow.db", uri)
            # The test run was trained on the synthetic series; warm start needs its data.
            .replace("data/sp500.csv", "data/synthetic.csv")
        )
        exec(compile(code, "README.md", "exec"), namespace)
    assert (tmp_path / "sp500_state.npz").exists()
    assert len(namespace["forecast"].prices) == 5


def test_readme_python_training_snippet_runs(tmp_path, monkeypatch):
    """The README's "From Python, with checkpoints" snippet, as written."""
    (tmp_path / "data").symlink_to(REPO_ROOT / "data")
    monkeypatch.chdir(tmp_path)
    [block] = readme_python_blocks("### From Python, with checkpoints")
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["forecast"].prices.shape == (750, 5)
    assert (tmp_path / "ckpt" / "latest").read_text() == "epoch-0003"
    namespace["model"].close()


def test_a_distributional_run_predicts_and_serves_its_quantiles(tmp_path):
    """model.output=quantiles end to end: train scores the model's intervals, `predict` prints
    and writes q<level> columns beside `forecast`, and the pyfunc model returns the same."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    metrics = train(
        compose_train_config(
            [
                *TINY,
                f"tracking.uri={uri}",
                "model.output=quantiles",
                "model.quantiles=[0.1,0.5,0.9]",
            ]
        )
    )
    assert 0 < metrics["test_pinball_scaled"] < 1 and 0 <= metrics["test_coverage_80"] <= 1
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("forecaster")
    run_id = client.search_runs([experiment.experiment_id])[0].info.run_id
    written = predict(
        predict_config(f"run_id={run_id}", f"tracking.uri={uri}", f"output={tmp_path}/q.csv")
    )
    columns = ["step", "date", "forecast", "q0.1", "q0.5", "q0.9"]
    assert list(pd.read_csv(tmp_path / "q.csv").columns) == columns
    np.testing.assert_array_equal(written["forecast"], written["q0.5"])
    assert np.all(written["q0.1"] < written["q0.5"]) and np.all(written["q0.5"] < written["q0.9"])
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model").predict(
        pd.read_csv(REPO_ROOT / "data/synthetic.csv", parse_dates=["Date"])
    )
    assert list(served.columns) == columns
    np.testing.assert_allclose(served[columns[2:]], written[columns[2:]], rtol=1e-12)


def test_a_single_series_model_refuses_a_panel_and_a_ticker(trained):
    uri, run_id = trained
    common = [f"run_id={run_id}", f"tracking.uri={uri}"]
    for overrides in (["data=panel"], ["ticker=AAPL"]):
        with pytest.raises(ConfigError, match="this model was trained on one series"):
            predict(compose_config("predict", [*overrides, *common]))

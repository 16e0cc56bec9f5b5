"""Tracking to a shared `mlflow server` over HTTP, and what its UI shows of a sweep.

One real server (SQLite store, proxied artifacts, bound to 127.0.0.1) serves the module; a small
grid sweep runs against it from the command line, as users run one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib.image
import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from conftest import REPO_ROOT, TINY
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from mlflow_server import (
    CHROMIUM,
    CHROMIUM_INSTALL,
    MlflowServer,
    chromium_available,
    mlflow_server,
    model_server,
    render_dom,
    screenshot,
)

from forecaster.tracking.registry import REFIT_OF_TAG, REFIT_RUN_TAG
from forecaster.tracking.ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING, run_url, runs_view_url

pytestmark = pytest.mark.slow

# The tiny config, two jobs in parallel that differ in model size.
SWEEP = [*(o for o in TINY if not o.startswith("model.num_units=")), "launcher=joblib"]
UNITS = (8, 16)
REGISTERED = "synthetic-daily"


@dataclass(frozen=True)
class Sweep:
    client: MlflowClient
    parent: Run
    children: list[Run]
    refit: Run  # the best child's refit on every bar
    terminal: str  # what the sweep printed


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow_server")) as server:
        yield server


@pytest.fixture(scope="module")
def sweep(server, tmp_path_factory) -> Sweep:
    work = tmp_path_factory.mktemp("sweep")
    overrides = [
        *SWEEP,
        f"model.num_units={','.join(map(str, UNITS))}",
        # The sweep's end refits its best run on every bar and registers that as the champion.
        "train.refit_full=true",
        f"train.register_as={REGISTERED}",
        f"tracking.uri={server.url}",
        f"hydra.sweep.dir={work / 'sweep'}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "forecaster", "train", "-m", *overrides],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    client = MlflowClient(server.url)
    experiment = client.get_experiment_by_name("forecaster")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    refits = [r for r in runs if REFIT_OF_TAG in r.data.tags]
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags and r not in refits]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    assert len(refits) == 1, [r.info.run_name for r in refits]
    return Sweep(client, parents[0], children, refits[0], result.stdout + result.stderr)


def test_a_sweep_over_http_is_a_parent_run_with_a_child_run_per_job(sweep):
    parent = sweep.parent
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name.startswith("sweep ")
    assert "model.num_units=8,16" in parent.info.run_name
    summary = pd.read_csv(sweep.client.download_artifacts(parent.info.run_id, "sweep/summary.csv"))
    assert sorted(summary["run_id"]) == sorted(c.info.run_id for c in sweep.children)

    assert len(sweep.children) == len(UNITS)
    for child in sweep.children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # The parent is named by the sweep's overrides, a child by what is its own.
    assert "tracking.uri" not in parent.info.run_name
    assert sorted(c.info.run_name for c in sweep.children) == sorted(
        f"model.num_units={units}" for units in UNITS
    )


def test_each_child_has_its_test_metrics_curves_and_artifacts_on_the_server(sweep, server):
    for child in sweep.children:
        run_id = child.info.run_id
        metrics = child.data.metrics
        assert {"test_rmse", "naive_test_rmse", "test_rmse_skill"} <= metrics.keys()
        assert metrics["test_rmse_skill"] == pytest.approx(
            1 - metrics["test_rmse"] / metrics["naive_test_rmse"]
        )
        assert len(sweep.client.get_metric_history(run_id, "val_loss")) == 2  # train.epochs
        artifacts = {
            a.path
            for folder in ("plots", "states")
            for a in sweep.client.list_artifacts(run_id, folder)
        }
        assert {
            "plots/forecast.png",
            "plots/learning_curve.png",
            "states/final_states.npz",
        } <= artifacts
    # Uploaded through the server (proxied), into its artifact store, not onto the client's disk.
    stored = list((server.root / "artifacts").rglob("forecast.png"))
    assert len(stored) == len(UNITS)


def test_the_logged_model_loads_over_http_and_forecasts(sweep, server):
    child = sweep.children[0]
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.url)
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{child.info.run_id}/model")
    finally:
        mlflow.set_tracking_uri(previous)
    prices = pd.read_csv(REPO_ROOT / "data/synthetic.csv", parse_dates=["Date"])
    recent = prices[["Date", "Adj Close"]].tail(60)
    forecast = model.predict(recent)
    assert list(forecast["step"]) == [1, 2, 3, 4, 5]
    assert np.all(np.isfinite(forecast["forecast"])) and np.all(forecast["forecast"] > 0)


def test_the_sweep_registers_the_refit_of_its_best_run_as_champion(sweep):
    best_id = sweep.parent.data.tags["best_run_id"]
    assert sweep.refit.data.tags[REFIT_OF_TAG] == best_id
    best = sweep.client.get_run(best_id)
    assert best.data.tags[REFIT_RUN_TAG] == sweep.refit.info.run_id
    champion = sweep.client.get_model_version_by_alias(REGISTERED, "champion")
    assert champion.run_id == sweep.refit.info.run_id
    assert f"best run {best.info.run_name} ({best_id})" in sweep.terminal
    assert f"{sweep.parent.info.experiment_id}/runs/{sweep.parent.info.run_id}" in sweep.terminal


@pytest.fixture(scope="module")
def served(sweep, server, tmp_path_factory) -> Iterator[str]:
    """`mlflow models serve -m models:/<name>@champion`, resolved through the tracking server."""
    with model_server(
        f"models:/{REGISTERED}@champion", server.url, tmp_path_factory.mktemp("serve")
    ) as url:
        yield url


def invoke(url: str, body: dict) -> tuple[int, dict]:
    response = requests.post(f"{url}/invocations", json=body, timeout=60)
    return response.status_code, response.json()


def split(frame: pd.DataFrame) -> dict:
    return frame.astype({"Date": str}).to_dict("split", index=False)


def test_serving_returns_the_forecast_and_the_state_once_on_request(served):
    prices = pd.read_csv(REPO_ROOT / "data/synthetic.csv")[["Date", "Adj Close"]]
    status, plain = invoke(served, {"dataframe_split": split(prices.tail(30))})
    assert status == 200
    assert [set(row) for row in plain["predictions"]] == [{"step", "date", "forecast"}] * 5
    assert plain["predictions"][0]["date"].startswith("2019-09-02")  # after Fri 2019-08-30

    history, later = prices.iloc[:-3], prices.iloc[-4:]  # `later` starts at history's last bar
    body = {"dataframe_split": split(history.tail(30)), "params": {"return_state": True}}
    status, first = invoke(served, body)
    assert status == 200 and set(first["predictions"]) == {"forecast", "state"}
    assert len(first["predictions"]["state"]) == 2 * 1 * 16  # (c, h) x 1 layer x 16 units
    status, second = invoke(
        served,
        {
            "dataframe_split": split(later),
            "params": {"initial_state": first["predictions"]["state"]},
        },
    )
    assert status == 200
    # The state was carried over the 3 new bars: the forecast starts after the last of them.
    assert first["predictions"]["forecast"][0]["date"].startswith("2019-08-28")
    assert second["predictions"][0]["date"].startswith("2019-09-02")


def test_bad_input_is_a_400_with_the_projects_message_and_no_stack_trace(served):
    prices = pd.read_csv(REPO_ROOT / "data/synthetic.csv")[["Date", "Adj Close"]]
    status, answer = invoke(served, {"dataframe_split": split(prices.tail(5))})
    assert status == 400
    assert answer == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "price series too short to forecast: 5 bars available, need at least 21 "
        "bars for window.lookback = 20 with data.target = 'log_return'. Fix: send the last 21 "
        "bars or more, oldest first.",
    }
    unsorted = prices.tail(30).iloc[::-1]
    status, answer = invoke(served, {"dataframe_split": split(unsorted)})
    assert status == 400 and "input: row 1: date" in answer["message"]
    assert "Fix: sort" in answer["message"] and "stack_trace" not in answer
    body = {"dataframe_split": split(prices.tail(30)), "params": {"initial_state": [0.0] * 3}}
    status, answer = invoke(served, body)
    assert status == 400 and answer["message"].startswith("a packed state has 3 values")


def test_the_readme_request_gets_the_documented_response(served, tmp_path, monkeypatch):
    """The README's REST example, as written (the port, and the test's data file)."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Serving over REST", 1)[1].split("\n## ", 1)[0]
    request = section.split("```python\n", 1)[1].split("```", 1)[0]
    documented = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    (tmp_path / "data").symlink_to(REPO_ROOT / "data")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    code = request.replace("http://127.0.0.1:5001", served).replace("sp500.csv", "synthetic.csv")
    exec(compile(code, "README.md", "exec"), namespace)
    response = namespace["response"]
    assert response.status_code == 200
    answer, expected = response.json()["predictions"], documented["predictions"]
    assert answer.keys() == expected.keys()
    assert len(answer["forecast"]) == len(expected["forecast"])
    assert [row.keys() for row in answer["forecast"]] == [
        row.keys() for row in expected["forecast"]
    ]


@pytest.fixture(scope="module")
def chromium() -> None:
    """Checked before the server starts, when it comes first among a test's arguments."""
    if not chromium_available():
        message = f"headless Chromium ({CHROMIUM}) is needed: {CHROMIUM_INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def test_the_ui_lists_the_sweep_runs_with_their_test_metrics(chromium, sweep, server, tmp_path):
    metrics = ["test_rmse_skill", "test_rmse", "naive_test_rmse"]
    url = runs_view_url(
        server.url,
        sweep.parent.info.experiment_id,
        metrics=metrics,
        order_by="test_rmse_skill",
        ascending=False,
    )
    dom = render_dom(url)
    for run in [sweep.parent, *sweep.children]:
        assert run.info.run_name in dom
    for metric in metrics:
        assert f'col-id="metrics.`{metric}`"' in dom  # a column of the runs table

    pixels = matplotlib.image.imread(screenshot(url, tmp_path / "ui.png", window=(1600, 1000)))
    assert pixels.shape[:2] == (1000, 1600)
    assert len(np.unique(pixels)) > 50  # a rendered page, not a blank one


def test_the_experiment_is_a_model_training_one_and_its_link_opens_on_the_runs(
    chromium, sweep, server
):
    experiment = sweep.client.get_experiment(sweep.parent.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    # The link a run prints (its `runs table:` line) opens the runs table, not the GenAI
    # overview (traces, tokens, latency) a plain experiment link opens on in MLflow 3.17.
    url = runs_view_url(
        server.url, experiment.experiment_id, metrics=["test_mae"], order_by="test_mae"
    )
    dom = render_dom(url)
    for run in sweep.children:  # sorted by a metric: a row each, with its dataset
        assert run.info.run_name in dom
    assert 'col-id="metrics.`test_mae`"' in dom
    assert 'col-id="attributes.`Dataset`"' in dom and "synthetic.csv" in dom
    assert "Overview" not in dom and "Token Usage" not in dom


def test_a_run_page_shows_its_metrics_and_the_dataset_it_trained_on(chromium, sweep, server):
    child = sweep.children[0]
    inputs = child.inputs.dataset_inputs
    assert [i.dataset.name for i in inputs] == ["synthetic.csv"]
    (context,) = [t.value for t in inputs[0].tags if t.key == "mlflow.data.context"]
    assert context == "training"
    assert child.data.tags["data.sha256"].startswith(inputs[0].dataset.digest)

    dom = render_dom(run_url(server.url, child.info.experiment_id, child.info.run_id))
    assert "synthetic.csv" in dom and inputs[0].dataset.digest[:8] in dom
    for metric in ("test_mae", "naive_test_mae", "best_baseline_test_mae"):
        assert metric in dom
        assert str(child.data.metrics[metric])[:6] in dom  # the UI shows the full value

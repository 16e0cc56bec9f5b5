"""Installing an extra never changes what a logged model depends on: real installs, in the
README's order, into a fresh virtualenv.

The package first (Quick start, command 1), then a model trained and logged with it, then the test
extras (command 2), which bring the Ray launcher and with it cloudpickle below 3. The model's
pinned requirements are still what is installed, and it loads and forecasts without a warning:
it is logged as code, so the cloudpickle that logged it does not matter.

About 11 minutes here (7 for the package, 4 for the extras, on 2 busy cores), so it runs when
FORECASTER_TEST_INSTALLS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TINY
from mlflow.tracking import MlflowClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("FORECASTER_TEST_INSTALLS") != "1",
        reason="real installs into a fresh venv (~11 min): set FORECASTER_TEST_INSTALLS=1",
    ),
]

VERSIONS = (
    "import importlib.metadata as m, json, sys; "
    "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
)
LOAD = """
import sys, warnings
import mlflow, pandas as pd
warnings.simplefilter("always")
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(f"runs:/{sys.argv[2]}/model")
prices = pd.read_csv(sys.argv[3], parse_dates=["Date"])[["Date", "Adj Close"]]
print(model.predict(prices.tail(30))["forecast"].tolist())
"""


def run(*command, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, cwd=cwd, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def versions(python: Path, names: list[str]) -> dict[str, str]:
    return json.loads(run(python, "-c", VERSIONS, *names).stdout)


def test_the_extras_keep_a_logged_models_requirements_and_it_loads_without_a_warning(tmp_path):
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "-e", REPO_ROOT)  # Quick start, command 1

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run(python, "-m", "forecaster", "train", *TINY, f"tracking.uri={uri}", cwd=tmp_path)
    client = MlflowClient(uri)
    [logged] = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    run_id = logged.info.run_id
    [requirements] = (tmp_path / "mlartifacts").rglob("requirements.txt")
    pins = dict(line.split("==") for line in requirements.read_text().split())
    assert set(pins) == {"tensorflow-cpu", "numpy", "pandas", "mlflow"}
    before = versions(python, [*pins, "cloudpickle"])
    assert {name: before[name] for name in pins} == pins

    run(python, "-m", "pip", "install", "-q", "-e", f"{REPO_ROOT}[test]")  # command 2
    after = versions(python, [*pins, "cloudpickle"])
    assert {name: after[name] for name in pins} == pins
    print(f"cloudpickle {before['cloudpickle']} -> {after['cloudpickle']}")  # the Ray pin

    loaded = run(python, "-c", LOAD, uri, run_id, REPO_ROOT / "data/synthetic.csv", cwd=tmp_path)
    assert "CloudPickle" not in loaded.stderr and "incompatible" not in loaded.stderr
    assert len(json.loads(loaded.stdout.strip().splitlines()[-1])) == 5

"""Installing an extra never changes what a logged model depends on.

The README installs the package first (Quick start, command 1), trains and logs a model with it,
then installs the test extras (command 2), which bring the Ray launcher and with it cloudpickle
below 3. A logged model pins `SERVING_PACKAGES` (not cloudpickle: it is logged as code), so what
matters is that no extra moves those.

- In CI: pip resolves the package alone and with the test extras (which include every other
  extra) from the index without installing (`--dry-run --report`, ~1 min each); the serving
  packages must resolve to the same versions. A model logged here then loads in a fresh process
  without MLflow's "may be incompatible" warning.
- Opt-in (FORECASTER_TEST_INSTALLS=1, ~11 minutes: 7 for the package, 4 for the extras, on 2
  busy cores): the real thing, installs in the README's order into a fresh virtualenv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TINY
from mlflow.tracking import MlflowClient
from packaging.utils import canonicalize_name

from forecaster.tracking.pyfunc import SERVING_PACKAGES

pytestmark = pytest.mark.slow
real_installs = pytest.mark.skipif(
    os.environ.get("FORECASTER_TEST_INSTALLS") != "1",
    reason="real installs into a fresh venv (~11 min): set FORECASTER_TEST_INSTALLS=1",
)

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


def resolve(requirement: str, report: Path) -> dict[str, str]:
    """What pip would install for `requirement` into an empty environment: name -> version."""
    run(
        sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
        "--report", report, requirement,
    )  # fmt: skip
    return {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }


def logged_model(tmp_path: Path, python: Path | str) -> tuple[str, str, dict[str, str]]:
    """Train the tiny model with `python` and log it: (store URI, run id, its pinned packages)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run(python, "-m", "forecaster", "train", *TINY, f"tracking.uri={uri}", cwd=tmp_path)
    client = MlflowClient(uri)
    [logged] = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    [requirements] = (tmp_path / "mlartifacts").rglob("requirements.txt")
    pins = dict(line.split("==") for line in requirements.read_text().split())
    assert set(pins) == set(SERVING_PACKAGES)
    return uri, logged.info.run_id, pins


def load_without_a_warning(python: Path | str, uri: str, run_id: str, cwd: Path) -> None:
    loaded = run(python, "-c", LOAD, uri, run_id, REPO_ROOT / "data/synthetic.csv", cwd=cwd)
    assert "CloudPickle" not in loaded.stderr and "incompatible" not in loaded.stderr
    assert len(json.loads(loaded.stdout.strip().splitlines()[-1])) == 5


def test_the_extras_resolve_a_logged_models_packages_to_the_same_versions(tmp_path):
    # The two resolutions wait mostly on the index, so they and the training run side by side.
    with ThreadPoolExecutor(3) as pool:
        alone = pool.submit(resolve, str(REPO_ROOT), tmp_path / "alone.json")
        with_extras = pool.submit(resolve, f"{REPO_ROOT}[test]", tmp_path / "test.json")
        uri, run_id, pins = pool.submit(logged_model, tmp_path, sys.executable).result()
        alone, with_extras = alone.result(), with_extras.result()
    assert {name: with_extras[name] for name in SERVING_PACKAGES} == {
        name: alone[name] for name in SERVING_PACKAGES
    }
    moved = {n: (v, with_extras[n]) for n, v in alone.items() if with_extras.get(n, v) != v}
    print(f"the test extras move {moved}")  # cloudpickle and joblib, for the Ray launcher

    # So a model logged right after command 1 pins what this environment (command 2's) has.
    assert pins == {name: alone[name] for name in SERVING_PACKAGES}
    load_without_a_warning(sys.executable, uri, run_id, tmp_path)


@real_installs
def test_the_extras_keep_a_logged_models_requirements_and_it_loads_without_a_warning(tmp_path):
    run(sys.executable, "-m", "venv", tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "-e", REPO_ROOT)  # Quick start, command 1
    uri, run_id, pins = logged_model(tmp_path, python)
    before = versions(python, [*pins, "cloudpickle"])
    assert {name: before[name] for name in pins} == pins

    run(python, "-m", "pip", "install", "-q", "-e", f"{REPO_ROOT}[test]")  # command 2
    after = versions(python, [*pins, "cloudpickle"])
    assert {name: after[name] for name in pins} == pins
    print(f"cloudpickle {before['cloudpickle']} -> {after['cloudpickle']}")  # the Ray pin
    load_without_a_warning(python, uri, run_id, tmp_path)

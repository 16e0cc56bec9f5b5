"""The wheel carries the whole application: every module, every config (experiments included)
and the bundled data; installed outside the repository, `python -m forecaster train` runs from
any directory and tracks to `mlflow.db` there."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT, TINY
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def files_under(folder: Path, pattern: str) -> list[Path]:
    return [p for p in folder.rglob(pattern) if "__pycache__" not in p.parts]


def expected_wheel_files() -> set[str]:
    package = REPO_ROOT / "forecaster"
    expected = {f"forecaster/{p.relative_to(package)}" for p in files_under(package, "*.py")}
    conf = REPO_ROOT / "conf"
    expected |= {
        f"forecaster/conf/{p.relative_to(conf)}"
        for p in files_under(conf, "*.yaml")
        if "experiment" not in p.relative_to(conf).parts  # a link to experiments/
    }
    expected |= {
        f"forecaster/conf/experiment/{p.name}" for p in (REPO_ROOT / "experiments").glob("*.yaml")
    }
    expected |= {f"forecaster/datasets/{p.name}" for p in (REPO_ROOT / "data").glob("*.csv")}
    expected.add("hydra_plugins/forecaster_launcher/__init__.py")
    return expected


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([*args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_the_installed_wheel_trains_from_any_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run(*pip, "wheel", "--no-deps", "-w", str(dist), str(REPO_ROOT), cwd=tmp_path, env=env)
    [wheel] = dist.glob("forecaster-*.whl")
    missing = expected_wheel_files() - set(zipfile.ZipFile(wheel).namelist())
    assert not missing, f"the wheel lacks {sorted(missing)}"

    site = tmp_path / "site"
    run(*pip, "install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp_path, env=env)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["PYTHONPATH"] = str(site)  # ahead of the editable install of this checkout
    probe = run(
        sys.executable,
        "-c",
        "import forecaster, forecaster.paths as p\n"
        "print(forecaster.__file__, p.bundled('sp500.csv'), p.workspace('mlflow.db'))",
        cwd=elsewhere,
        env=env,
    )
    module, data, store = probe.stdout.split()
    assert Path(module).is_relative_to(site)
    assert Path(data) == (site / "forecaster" / "datasets" / "sp500.csv").resolve()
    assert Path(store) == elsewhere.resolve() / "mlflow.db"

    # A recipe from experiments/ (shipped as conf/experiment), shrunk; default tracking store.
    run(
        sys.executable, "-m", "forecaster", "train", "experiment=sp500_h5", *TINY,
        "train.epochs=1", f"hydra.run.dir={tmp_path / 'outputs'}", cwd=elsewhere, env=env,
    )  # fmt: skip
    client = MlflowClient(f"sqlite:///{elsewhere.resolve() / 'mlflow.db'}")
    [run_] = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    assert run_.info.status == "FINISHED"
    assert Path(run_.data.params["data.path"]).is_relative_to(site.resolve())
    assert run_.data.params["model.num_layers"] == "2"  # from the recipe

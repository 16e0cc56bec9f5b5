"""Shared fixtures: the real Hydra config, composed once per test and shrunk to test size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from forecaster.cli import config
from forecaster.data.io import PriceSeries
from forecaster.data.panel import Panel
from forecaster.paths import CONFIG_MODULE

REPO_ROOT = Path(__file__).resolve().parent.parent

# Small enough to train in seconds, still the config users run.
TINY = [
    "data=synthetic",
    "window.lookback=20",
    "window.horizon=5",
    "model.num_units=8",
    "train.epochs=2",
    "train.batch_size=128",
    "train.intra_op_threads=1",
    "eval.plot_origins=2",
]


def start_forecaster(*args: str, cwd: Path, **popen) -> subprocess.Popen:
    """`python -m forecaster <args>` in `cwd`, started; its output (stdout and stderr) piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "forecaster", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def finish(process: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    """Wait for a `start_forecaster` process: (exit status, its output)."""
    output, _ = process.communicate(timeout=timeout)
    return process.returncode, output


def panel_of(**prices: pd.Series) -> Panel:
    """A panel of in-memory series, one per keyword (its ticker)."""
    return Panel(
        tuple(
            PriceSeries(p, Path(f"/{t}.csv"), "date", "price", "0", 0, ticker=t)
            for t, p in prices.items()
        )
    )


def served_frame(exported: Path, prices: pd.Series, bars: int = 20) -> pd.DataFrame:
    """What the exported model at `exported` serves for the last `bars` of `prices` (sent as a
    `Date`, `Close` frame, as a client would)."""
    from forecaster.serving import ExportedForecaster
    from forecaster.serving.exported import forecast_frame

    served = ExportedForecaster(exported)
    try:
        request = prices.rename("Close").rename_axis("Date").reset_index().iloc[-bars:]
        return forecast_frame(served, request).to_frame()
    finally:
        served.close()


def compose_config(name: str, overrides: list[str], **kwargs) -> DictConfig:
    """`conf/<name>.yaml` composed with `overrides`, as `python -m forecaster <name>` would."""
    config.register()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(name, overrides=overrides, **kwargs)


def compose_train_config(overrides: list[str]) -> DictConfig:
    return compose_config("train", overrides)


@pytest.fixture(autouse=True)
def _library_log_levels_restored():
    """`main()` run in-process sets the libraries' log levels in os.environ, as the CLI should;
    without this, every later test's subprocesses would inherit them (and, say, never log that
    MLflow created a store)."""
    names = ("MLFLOW_LOGGING_LEVEL", "TF_CPP_MIN_LOG_LEVEL")
    before = {name: os.environ.get(name) for name in names}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def tracking_uri(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def tiny_config(tracking_uri: str):
    """`tiny_config(*overrides)`: the real train config, shrunk, tracking to a temp store."""

    def make(*overrides: str) -> DictConfig:
        return compose_train_config([*TINY, f"tracking.uri={tracking_uri}", *overrides])

    return make

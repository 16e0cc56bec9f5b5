"""The command line: `forecaster <command> --help` from the schema, a quiet terminal, progress
bars only on a terminal, and the console script."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import TINY

from forecaster.__main__ import main
from forecaster.cli.progress import Progress
from forecaster.training.history import EpochLogs


def test_train_help_lists_groups_and_keys_with_defaults_and_meanings(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: forecaster train")
    assert "load, split, fit, evaluate" in out  # the command's docstring
    assert re.search(r"^  data +files, long, nasdaq, panel, \[sp500\], synthetic$", out, re.M)
    # Default and meaning, the meaning taken from the comment beside the schema's field.
    assert re.search(r"^  window\.horizon +5\n +bars forecast$", out, re.M)
    assert re.search(r"^  data\.calendar +XNYS\n +Exchange calendar of forecast dates", out, re.M)
    assert re.search(r"^  train\.baselines +\['naive', 'drift', 'ridge'\]$", out, re.M)


def test_every_command_has_help(capsys):
    for command in ("backtest", "predict"):
        assert main([command, "-h"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: forecaster {command}")
    main(["backtest", "--help"])
    assert "backtest.refit_every" in capsys.readouterr().out


def test_progress_is_hidden_off_a_terminal_and_drawn_on_one():
    logs = EpochLogs(1, 1.0, 0.5, 0.5, 1, 0.1)
    off = io.StringIO()
    bar = Progress(3, stream=off)
    bar.on_epoch_end(None, logs)
    bar.close()
    assert not bar.shown and off.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    on = Terminal()
    bar = Progress(3, stream=on)
    bar.on_epoch_end(None, logs)
    bar.close()
    assert bar.shown and "1/3" in on.getvalue() and "val_loss=0.50000" in on.getvalue()


# Every line of a default run is one of the run's own log lines (Hydra's format, a forecaster
# logger): no oneDNN notice, TensorFlow C++ or deprecation line, MLflow INFO or warning.
OWN_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+\]\[forecaster\.[\w.]+\]\[(INFO|WARNING)\] - ")


@pytest.mark.slow
def test_a_real_run_prints_its_own_lines_and_no_library_chatter(tmp_path):
    script = shutil.which("forecaster", path=os.path.dirname(sys.executable))
    assert script, "the forecaster console script is installed beside python"
    result = subprocess.run(
        [script, "train", *TINY, f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "test rmse" in out and "runs table: " in out and "calendar: none" in out
    chatter = [line for line in out.splitlines() if line and not OWN_LINE.match(line)]
    assert not chatter
    assert "training:" not in out  # no progress bar: stderr is not a terminal


def test_verbose_brings_the_library_lines_back(monkeypatch):
    from forecaster.__main__ import quiet_libraries

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    quiet_libraries(verbose=False)
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "ERROR"
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet_libraries(verbose=True)
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "INFO"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


def test_a_backtest_fit_steps_its_bar_after_the_fit_context():
    import contextlib
    from types import SimpleNamespace

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    entered = []

    @contextlib.contextmanager
    def fit_context(name, fold, model):
        entered.append(name)
        yield

    stream = Terminal()
    bar = Progress(2, desc="backtest", unit="fit", stream=stream)
    with bar.around(fit_context)("ridge", SimpleNamespace(index=0), None):
        pass
    assert entered == ["ridge"] and bar.bar.n == 1
    assert "fold 1 ridge" in stream.getvalue()
    bar.close()


def test_a_sweep_knows_how_many_jobs_it_launches():
    from omegaconf import OmegaConf

    from forecaster.cli.sweep_callback import job_count

    def sweep(task, **sweeper):
        return OmegaConf.create({"hydra": {"sweeper": sweeper, "overrides": {"task": task}}})

    grid = ["model.num_units=8,16", "window.horizon=range(5,25,5)", "seed=1"]
    assert job_count(sweep(grid, params=None)) == 8
    assert job_count(sweep(grid, params={"train.epochs": "1,2,3"})) == 24
    assert job_count(sweep(["model.num_units=choice(8,16)"], n_trials=7)) == 7  # Optuna
    assert job_count(sweep(["model.num_units=8,16)"], params=None)) is None  # unparsable


def test_the_sweep_bar_counts_ended_jobs_until_closed():
    import time

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    from forecaster.cli.progress import JobProgress

    ended = [0]
    stream = Terminal()
    bar = JobProgress(3, lambda: ended[0], interval=0.01, stream=stream)
    ended[0] = 2
    deadline = time.monotonic() + 10
    while bar.progress.bar.n < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bar.progress.bar.n == 2
    ended[0] = 3
    bar.close()  # the last count is read on closing
    assert bar.progress.bar.n == 3 and "2/3" in stream.getvalue() and "job/s" in stream.getvalue()

    calls = []
    off = JobProgress(3, lambda: calls.append(1) or 0, interval=0.01, stream=io.StringIO())
    time.sleep(0.05)
    off.close()
    assert calls == [] and not off.progress.shown  # off a terminal nothing polls the store


def test_the_sweep_callback_pickles_without_its_bar():
    import pickle

    from forecaster.cli.progress import JobProgress
    from forecaster.cli.sweep_callback import MlflowSweepCallback

    callback = MlflowSweepCallback()
    callback.progress = JobProgress(2, lambda: 0, stream=io.StringIO())
    copy = pickle.loads(pickle.dumps(callback))  # what joblib and Ray do with every job
    assert copy.progress is None and callback.progress is not None
    callback._close_progress()

"""The catalogue of bad input: every case, the exact message it prints, and what it leaves.

Each command case runs `python -m forecaster ...` in this process (the real entry point, Hydra
included) and checks the exit status, the message word for word, that no traceback is printed
and that no MLflow run is left RUNNING. Each data case runs the validator on a file (or a frame,
as a served model receives) and checks its message word for word.

In an expected message, `{tmp}` is the test's directory, `{store}` the shared store's URI,
`{run}` the id of the one finished run in it, `{port}` a port where nothing listens, and `{*}`
any text: only where the text depends on floating-point results or on the machine.
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY, compose_train_config
from hydra.core.global_hydra import GlobalHydra
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecaster.__main__ import main
from forecaster.data.io import load_prices, prices_from_frame
from forecaster.errors import DataError

SYNTHETIC = REPO_ROOT / "data" / "synthetic.csv"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]  # after `python -m forecaster`
    message: str  # the exact message (template, see the module docstring)
    status: int = 1
    level: str = "ERROR"  # the log level of the line holding the message; "hydra": Hydra's own
    setup: Callable[[Path], None] | None = None  # writes what the case needs into {tmp}


def write(name: str, text: str) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return setup


def scaled_synthetic(name: str, change: Callable[[pd.DataFrame], None]) -> Callable:
    def setup(tmp: Path) -> None:
        frame = pd.read_csv(SYNTHETIC)
        change(frame)
        frame.to_csv(tmp / name, index=False)

    return setup


def one_outlier(frame: pd.DataFrame) -> None:
    frame.loc[500, ["Close", "Adj Close"]] *= 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TRAIN = ("train", *TINY)
FIX_URI = (
    "sqlite:////absolute/path/mlflow.db, http://host:5000 (an `mlflow server`) or "
    "postgresql://user:password@host:5432/db"
)

COMMAND_CASES = [
    Case(
        "unknown exchange calendar",
        (*TRAIN, "data.calendar=NYC"),
        "data.calendar='NYC' is not an exchange calendar exchange_calendars knows. Fix: use its "
        "ISO 10383 code (XNYS for the NYSE and NASDAQ-listed US indices, XLON, XTKS, XETR, ...; "
        "all {*}), or data.calendar=null to follow the data's own spacing.",
    ),
    # -- the tracking store, checked before anything runs ------------------------------------
    Case(
        "unwritable tracking directory",
        (*TRAIN, "tracking.uri=sqlite:////proc/forecaster/mlflow.db"),
        "tracking.uri='sqlite:////proc/forecaster/mlflow.db': cannot create the directory "
        "/proc/forecaster for the store (No such file or directory). Fix: choose a location you "
        "can write to.",
    ),
    Case(
        "malformed tracking URI",
        (*TRAIN, "tracking.uri=sqlite//tmp/mlflow.db"),
        "tracking.uri='sqlite//tmp/mlflow.db' is not a well-formed URI: it should start with "
        f"sqlite:///, then the path. Fix: write it like {FIX_URI}.",
    ),
    Case(
        "tracking URI with too few slashes",
        (*TRAIN, "tracking.uri=sqlite://mlflow.db"),
        "tracking.uri='sqlite://mlflow.db' is not a well-formed SQLite URI: the path follows "
        "'sqlite:///' (three slashes, then the path: four slashes for an absolute one). Fix: "
        "write it like sqlite:////absolute/path/mlflow.db.",
    ),
    Case(
        "unknown tracking scheme",
        (*TRAIN, "tracking.uri=htp://127.0.0.1:5000"),
        "tracking.uri='htp://127.0.0.1:5000' has the unknown scheme 'htp': MLflow tracks to "
        "sqlite, http, https, postgresql, mysql, mssql, databricks. Fix: use e.g. "
        f"{FIX_URI}.",
    ),
    Case(
        "file-store path as tracking URI",
        (*TRAIN, "tracking.uri={tmp}/mlruns"),
        "tracking.uri='{tmp}/mlruns' is a directory path, which MLflow reads as a file store "
        "(a directory of runs) and MLflow 3 no longer tracks to. Fix: use a SQLite database "
        "instead, e.g. tracking.uri=sqlite:///{tmp}/mlruns/mlflow.db.",
    ),
    Case(
        "file: URI as tracking URI",
        (*TRAIN, "tracking.uri=file://{tmp}/mlruns"),
        "tracking.uri='file://{tmp}/mlruns' is a file store (a directory of runs), which "
        "MLflow 3 no longer tracks to. Fix: use a SQLite database instead, e.g. "
        "tracking.uri=sqlite:///{tmp}/mlruns/mlflow.db.",
    ),
    Case(
        "sqlite URI naming a file that is not a database",
        (*TRAIN, "tracking.uri=sqlite:///{tmp}/prices.csv"),
        "tracking.uri='sqlite:///{tmp}/prices.csv': {tmp}/prices.csv is not an SQLite database "
        "(it begins b'Date,Close\\n2'). Fix: point tracking.uri at an MLflow .db file, or at a "
        "new file name to create a store.",
        setup=write("prices.csv", "Date,Close\n2020-01-02,1\n"),
    ),
    Case(
        "sqlite URI naming a directory",
        (*TRAIN, "tracking.uri=sqlite:///{tmp}"),
        "tracking.uri='sqlite:///{tmp}': {tmp} is a directory, not a database file. Fix: name a "
        "file in it, e.g. tracking.uri=sqlite:///{tmp}/mlflow.db.",
    ),
    Case(
        "sqlite URI without a file",
        (*TRAIN, "tracking.uri=sqlite:///:memory:"),
        "tracking.uri='sqlite:///:memory:' names no database file, so runs would be lost when "
        "the process ends. Fix: name a file, e.g. sqlite:////absolute/path/mlflow.db.",
    ),
    Case(
        "nothing listens at the tracking server",
        (*TRAIN, "tracking.uri=http://127.0.0.1:{port}"),
        "tracking.uri='http://127.0.0.1:{port}': no MLflow server answers there (Connection "
        "refused, after 5 s). Fix: start it (mlflow server --host 127.0.0.1 --port {port} ...) "
        "or correct tracking.uri.",
    ),
    Case(
        "nothing listens at the database server",
        (*TRAIN, "tracking.uri=postgresql://mlflow:secret@127.0.0.1:{port}/mlflow"),
        "tracking.uri='postgresql://mlflow:***@127.0.0.1:{port}/mlflow': the database server at "
        "127.0.0.1:{port} does not answer (Connection refused). Fix: start it, or correct "
        "tracking.uri.",
    ),
    Case(
        "database driver missing",
        (*TRAIN, "tracking.uri=mysql://mlflow@127.0.0.1/mlflow"),
        "tracking.uri='mysql://mlflow@127.0.0.1/mlflow': the mysql driver is not installed "
        "(No module named 'MySQLdb'). Fix: pip install pymysql.",
    ),
    Case(
        "empty experiment name",
        (*TRAIN, "tracking.uri={store}", "tracking.experiment_name=''"),
        "tracking.experiment_name='' is empty. Fix: name the experiment, e.g. "
        "tracking.experiment_name=forecaster (the default).",
    ),
    Case(
        "artifact location that cannot be created",
        (
            *TRAIN,
            "tracking.uri={store}",
            "tracking.experiment_name=elsewhere",
            "tracking.artifact_location=/proc/forecaster/artifacts",
        ),
        "tracking.artifact_location='/proc/forecaster/artifacts': cannot create the artifact "
        "directory /proc/forecaster/artifacts (No such file or directory). Fix: set "
        "tracking.artifact_location to a directory you can write to.",
    ),
    # -- the config ----------------------------------------------------------------------------
    Case(
        "negative seed",
        (*TRAIN, "tracking.uri={store}", "seed=-1"),
        "seed=-1 is invalid: expected an integer from 0 to 4294967295.",
    ),
    Case(
        "unknown model output",
        (*TRAIN, "tracking.uri={store}", "model.output=gaussian"),
        "model.output='gaussian' is invalid: expected one of ('point', 'quantiles', 'student_t').",
    ),
    Case(
        "distributional output of prices",
        (*TRAIN, "tracking.uri={store}", "model.output=quantiles", "data.target=price"),
        "model.output='quantiles' forecasts the distribution of the cumulative log return and "
        "needs data.target=log_return, not 'price'. Fix: set data.target=log_return, or "
        "model.output=point to forecast prices.",
    ),
    Case(
        "calibration of a point forecast",
        (*TRAIN, "tracking.uri={store}", "model.calibration=scale"),
        "model.calibration=scale calibrates the intervals of a distributional output, and "
        "model.output=point forecasts none. Fix: set model.output=quantiles (or student_t), or "
        "model.calibration=none.",
    ),
    Case(
        "negative thread count",
        (*TRAIN, "tracking.uri={store}", "train.intra_op_threads=-1"),
        "train.intra_op_threads=-1 is invalid: expected an integer >= 1.",
    ),
    Case(
        "appended misspelt key",
        (*TRAIN, "tracking.uri={store}", "+window.lookbak=30"),
        "unknown config key 'window.lookbak': Did you mean window.lookback? the window group's "
        "keys are ['horizon', 'lookback', 'stride', 'test_fraction', 'val_fraction']. Fix: "
        "correct or drop the override (+window.lookbak=... adds a key the code would never "
        "read).",
    ),
    Case(
        "appended unknown top-level key",
        (*TRAIN, "tracking.uri={store}", "+foo=1"),
        "unknown config key 'foo': the top-level keys are ['checkpoint_dir', 'data', 'eval', "
        "'model', 'objective', 'resume', 'seed', 'tracking', 'train', 'window']. Fix: correct "
        "or drop the override (+foo=... adds a key the code would never read).",
    ),
    Case(
        "misspelt key (Hydra rejects it)",
        (*TRAIN, "tracking.uri={store}", "window.lookbak=30"),
        "Could not override 'window.lookbak'.",
        level="hydra",
    ),
    Case(
        "objective that no run logs",
        (*TRAIN, "tracking.uri={store}", "objective.metric=accuracy"),
        "objective.metric='accuracy' is not a metric a run logs; choose one of ['best_val_loss', "
        "'best_epoch', 'test_mae', 'test_rmse', 'test_smape', 'test_mase', "
        "'test_directional_accuracy', 'naive_test_mae', 'naive_test_rmse', 'naive_test_smape', "
        "'naive_test_mase', 'naive_test_directional_accuracy', 'drift_test_mae', "
        "'drift_test_rmse', 'drift_test_smape', 'drift_test_mase', "
        "'drift_test_directional_accuracy', 'ridge_test_mae', 'ridge_test_rmse', "
        "'ridge_test_smape', 'ridge_test_mase', 'ridge_test_directional_accuracy', "
        "'best_baseline_test_mae', 'test_rmse_skill', 'test_skill_vs_best_baseline'].",
    ),
    # -- numbers that stop being numbers -------------------------------------------------------
    Case(
        "learning rate that diverges",
        (*TRAIN, "tracking.uri={store}", "train.learning_rate=1e6"),
        "{*}: lower train.learning_rate{*}",
    ),
    Case(
        "one outlier in the training prices (a warning; the run finishes)",
        (*TRAIN, "tracking.uri={store}", "data.path={tmp}/outlier.csv"),
        "test_mase, naive_test_mase: the moves into and out of the training bar of 2011-12-05 "
        "(price {*}) are 100.0% of the training prices' one-step moves, which scale MASE: this "
        "one bar decides the metric. Check that bar in the data.",
        status=0,
        level="WARNING",
        setup=scaled_synthetic("outlier.csv", one_outlier),
    ),
    Case(
        "series too short for the window",
        (*TRAIN, "tracking.uri={store}", "window.lookback=5000"),
        "price series too short: 2520 bars available, need at least 7151 bars. The split gives "
        "train 1763 / val 378 / test 378 log_return values; train needs window.lookback + "
        "window.horizon = 5005, val and test need window.horizon = 5 each. Use a longer series, "
        "lower window.lookback / window.horizon, or change window.val_fraction / "
        "window.test_fraction.",
    ),
    Case(
        "constant training prices",
        (*TRAIN, "tracking.uri={store}", "data.path={tmp}/flat.csv", "data.target=price"),
        "cannot standardise the target: the training part is constant or not finite (mean=100.0, "
        "std=0.0). Use a series whose training part moves, or give the training part more bars "
        "(lower window.val_fraction / window.test_fraction).",
        setup=scaled_synthetic("flat.csv", lambda f: f.__setitem__("Adj Close", 100.0)),
    ),
    # -- resume --------------------------------------------------------------------------------
    Case(
        "resume a run id with path characters",
        ("train", "tracking.uri={store}", "resume=../../etc"),
        "resume='../../etc' is not an MLflow run id (letters, digits, '-' and '_', such as the "
        "32 hex digits the MLflow UI shows). Fix: copy the id from the UI or from `mlflow runs "
        "list --experiment-id <id>`.",
    ),
    Case(
        "resume a run that does not exist",
        ("train", "tracking.uri={store}", "resume=0123456789abcdef0123456789abcdef"),
        "resume=0123456789abcdef0123456789abcdef: no such run in the tracking store {store}. "
        "Fix: check the id, and that tracking.uri (or MLFLOW_TRACKING_URI) names the store the "
        "run is in.",
    ),
    Case(
        "resume a finished run",
        ("train", "tracking.uri={store}", "resume={run}"),
        "resume={run}: run {run} ({*}) FINISHED; there is nothing to continue.",
    ),
    Case(
        "resume with other overrides",
        ("train", "tracking.uri={store}", "resume={run}", "model.num_units=16"),
        "resume={run} continues a run with the config it started with, so it takes no other "
        "overrides; drop ['model.num_units=16'] (tracking.* may stay, to name the store).",
    ),
    Case(
        "resume=last with nothing to resume",
        ("train", "tracking.uri={store}", "resume=last", "tracking.experiment_name=empty"),
        "resume=last: no run in experiment 'empty' of {store} can be continued (one that ended "
        "FAILED or KILLED and has a checkpoint on this machine). Fix: start a new run, or name "
        "the run: resume=<run id>.",
    ),
    # -- predict -------------------------------------------------------------------------------
    Case(
        "predict with a registered model that does not exist",
        ("predict", "tracking.uri={store}", "model_uri=models:/nope/1", "data=synthetic"),
        "model_uri=models:/nope/1: Model Version (name=nope, version=1) not found in the "
        "tracking store {store}; its registered models: none. Fix: register one with "
        "train.register_as=<name>, or check the name and the alias or version, and that "
        "tracking.uri (or MLFLOW_TRACKING_URI) names the store that holds it.",
    ),
    Case(
        "predict with an alias nobody set",
        ("predict", "tracking.uri={store}", "model_uri=models:/nope@champion"),
        "model_uri=models:/nope@champion: Registered Model with name=nope not found in the "
        "tracking store {store}; its registered models: none. Fix: register one with "
        "train.register_as=<name>, or check the name and the alias or version, and that "
        "tracking.uri (or MLFLOW_TRACKING_URI) names the store that holds it.",
    ),
    Case(
        "predict with a model URI of another kind",
        ("predict", "tracking.uri={store}", "model_uri=s3://bucket/model"),
        "model_uri='s3://bucket/model': expected models:/<name>@<alias>, "
        "models:/<name>/<version> or runs:/<run id>/model",
    ),
    Case(
        "predict with two selectors",
        ("predict", "tracking.uri={store}", "run_id=latest", "model_uri=models:/m@champion"),
        "say which model to use with one of: run_id=<MLflow run id> (or run_id=latest), "
        "sweep=<sweep parent run id or name> pick=best, model_uri=models:/<name>@champion; "
        "got ['run_id', 'model_uri']",
    ),
    Case(
        "predict the latest run of an experiment that does not exist",
        ("predict", "tracking.uri={store}", "run_id=latest", "tracking.experiment_name=nope"),
        "no MLflow experiment 'nope' at {store}: train a model first, or point tracking.uri / "
        "tracking.experiment_name at the store that holds it",
    ),
    Case(
        "predict the best of a run that is not a sweep",
        ("predict", "tracking.uri={store}", "sweep={run}"),
        "sweep='{run}': run {run} ({*}) has no best run (tag best_run_id): it is not a sweep's "
        "parent, the sweep has not ended, or every job failed",
    ),
    Case(
        "predict the best of a sweep nobody ran",
        ("predict", "tracking.uri={store}", "sweep='sweep model.num_units=1,2'"),
        "sweep='sweep model.num_units=1,2': no run of that id or name. Fix: give the sweep's "
        "parent run id, or its name as the MLflow UI shows it (e.g. 'sweep "
        "model.num_units=32,64').",
    ),
    Case(
        "predict a sweep's worst",
        ("predict", "tracking.uri={store}", "sweep={run}", "pick=worst"),
        "pick='worst': the one way to pick a sweep's run is pick=best",
    ),
    Case(
        "predict over an existing output",
        ("predict", "tracking.uri={store}", "run_id={run}", "output={tmp}/f.csv"),
        "{tmp}/f.csv already exists; predict never replaces an output silently. Fix: name "
        "another file with output=<path>.csv, or replace it with overwrite=true.",
        setup=write("f.csv", "step,date,forecast\n"),
    ),
    Case(
        "train registering under a reserved alias",
        (*TRAIN, "tracking.uri={store}", "train.register_as=m", "train.register_alias=latest"),
        "train.register_alias='latest': an alias is letters, digits, '_' and '-', and neither "
        "'latest' nor v<number> (reserved by MLflow), e.g. champion.",
    ),
    Case(
        "predict with a run id with path characters",
        ("predict", "tracking.uri={store}", "run_id=../../etc/passwd", "data=synthetic"),
        "run_id='../../etc/passwd' is not an MLflow run id (letters, digits, '-' and '_', such "
        "as the 32 hex digits the MLflow UI shows). Fix: copy the id from the UI or from "
        "`mlflow runs list --experiment-id <id>`.",
    ),
    Case(
        "predict with a run that does not exist",
        ("predict", "tracking.uri={store}", "run_id=0123456789abcdef0123456789abcdef"),
        "run_id=0123456789abcdef0123456789abcdef: Run with "
        "id=0123456789abcdef0123456789abcdef not found in the tracking store {store}. Fix: "
        "check it, and that tracking.uri (or MLFLOW_TRACKING_URI) names the store that holds "
        "it; run_id=latest takes the newest.",
    ),
    Case(
        "predict into an unwritable output",
        ("predict", "tracking.uri={store}", "run_id={run}", "output=/proc/forecaster/f.csv"),
        "output=/proc/forecaster/f.csv: cannot create the directory /proc/forecaster (No such "
        "file or directory). Fix: choose a location you can write to with output=<path>.csv.",
    ),
    Case(
        "predict a panel with a single-series model",
        ("predict", "tracking.uri={store}", "run_id={run}", "data=panel"),
        "this model was trained on one series: give it one price file (data.path, e.g. "
        "data=sp500) and no ticker; a model over many tickers comes from `python -m forecaster "
        "train data=panel`.",
    ),
    Case(
        "scheduled sampling ratio out of range",
        (*TRAIN, "train.teacher_forcing=1.5"),
        "train.teacher_forcing=1.5 is invalid: expected a share of true decoder inputs in [0, 1] "
        "(1.0: teacher forcing, 0.0: the model's own predictions throughout).",
    ),
    Case(
        "unknown scheduled sampling decay",
        (*TRAIN, "train.teacher_forcing_decay=cosine"),
        "train.teacher_forcing_decay='cosine' is invalid: expected one of ('constant', "
        "'linear', 'inverse_sigmoid').",
    ),
    Case(
        "carried training without a carried forecast",
        (*TRAIN, "train.carry=true"),
        "train.carry=true trains the network on the state carried over the series, which only "
        "a carried forecast starts from: set model.state=carry too (or train.carry=false).",
    ),
    Case(
        "a training part too short for the carried training's chunks",
        (*TRAIN, "model.state=carry", "train.carry=true", "train.streams=100"),
        "train.carry=true needs at least one chunk per stream: the training part has {*} bars, "
        "{*} before its last horizon, fewer than train.streams (100) x train.chunk_length (20); "
        "lower train.streams or train.chunk_length, or give the training part more bars.",
    ),
    Case(
        "a global model's key on one series",
        (*TRAIN, "model.ticker_embedding=4"),
        "model.ticker_embedding, model.shrinkage and model.demean are settings of the global "
        "model over a panel (data=panel); a single series takes their defaults (0, none, true).",
    ),
    Case(
        "unknown shrinkage",
        (*TRAIN, "data=panel", "model.shrinkage=half"),
        "model.shrinkage='half' is invalid: expected one of ('none', 'global', 'per_series').",
    ),
    Case(
        "unknown covariate",
        (*TRAIN, "data=panel", "model.covariates=[vol]"),
        "model.covariates=['vol']: ['vol'] unknown. Fix: choose from ['volatility', 'volume', "
        "'range', 'tickers', 'calendar'], e.g. model.covariates=[volatility,calendar], or "
        "model.covariates=[] for none.",
    ),
    Case(
        "covariate named twice",
        (*TRAIN, "data=panel", "model.covariates=[calendar,calendar]"),
        "model.covariates=['calendar', 'calendar'] names a covariate twice.",
    ),
    Case(
        "volatility window too short",
        (*TRAIN, "data=panel", "model.volatility_window=1"),
        "model.volatility_window=1 is invalid: expected an integer >= 2.",
    ),
    Case(
        "covariates on one series",
        (*TRAIN, "model.covariates=[volatility]"),
        "model.covariates=['volatility']: covariates are built for the global model over a "
        "panel, which reads other tickers and bar fields (data=panel, files or long; a panel of "
        "one file works too). Fix: train on a panel, or set model.covariates=[].",
    ),
    Case(
        "predict without a model",
        ("predict", "tracking.uri={store}"),
        "say which model to use with one of: run_id=<MLflow run id> (or run_id=latest), "
        "sweep=<sweep parent run id or name> pick=best, model_uri=models:/<name>@champion",
    ),
    Case(
        "predict with an appended unknown key",
        ("predict", "tracking.uri={store}", "run_id={run}", "+warmstart=true"),
        "unknown config key 'warmstart': Did you mean warm_start? the top-level keys are "
        "['data', 'model_uri', 'output', 'overwrite', 'pick', 'run_id', 'sweep', 'ticker', "
        "'tracking', 'warm_start']. Fix: correct or "
        "drop the override (+warmstart=... adds a key the code would never read).",
    ),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, str]:
    """One store for every case, holding one finished tiny run: (URI, run id)."""
    from forecaster.cli.train import train

    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    train(compose_train_config([*TINY, f"tracking.uri={uri}", "train.epochs=1"]))
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    return uri, run.info.run_id


def cli(argv: list[str], capsys, caplog, monkeypatch) -> tuple[int, str, list]:
    """`python -m forecaster *argv`, in this process: (exit status, everything printed, log
    records). Hydra's logging set-up is left out (it would close pytest's log capture): the
    messages are read from the log records instead of the console."""
    GlobalHydra.instance().clear()
    argv = [*argv, "hydra/job_logging=none", "hydra/hydra_logging=none"]
    monkeypatch.setattr(sys, "argv", ["forecaster", *argv])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        try:
            status = main(argv)
        except SystemExit as exit:
            status = exit.code
        finally:
            GlobalHydra.instance().clear()
    printed = capsys.readouterr()
    return status, printed.out + printed.err, list(caplog.records)


def matches(template: str, message: str, **values: str) -> bool:
    pattern = re.escape(template).replace(re.escape("{*}"), ".*?")
    for name, value in values.items():
        pattern = pattern.replace(re.escape(f"{{{name}}}"), re.escape(value))
    return re.fullmatch(pattern, message, flags=re.DOTALL) is not None


def logged(records: list, level: str) -> list[str]:
    return [r.getMessage() for r in records if r.levelname == level]


@pytest.mark.parametrize("case", COMMAND_CASES, ids=lambda c: c.id)
def test_command_case(case, store, tmp_path, capsys, caplog, monkeypatch):
    uri, run_id = store
    values = {"tmp": str(tmp_path), "store": uri, "run": run_id, "port": str(free_port())}
    if case.setup is not None:
        case.setup(tmp_path)
    argv = [a.format(**values) for a in case.argv] + [f"hydra.run.dir={tmp_path / 'out'}"]
    started = time.monotonic()
    status, output, records = cli(argv, capsys, caplog, monkeypatch)
    assert time.monotonic() - started < 60  # a bad URI costs seconds, not minutes

    assert status == case.status, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert not [r for r in records if r.exc_info], "a traceback was logged"
    if case.level == "hydra":
        lines = output.strip().splitlines()
        assert lines and matches(case.message, lines[0], **values), output[-2000:]
    else:
        found = logged(records, case.level)
        assert any(matches(case.message, m, **values) for m in found), (
            f"expected:\n  {case.message}\nprinted at {case.level}:\n  " + "\n  ".join(found)
        )
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'")
    assert not running, [r.info.run_name for r in running]


# -- served models: the pyfunc model refuses what cannot be a price or a state ----------------


def test_the_logged_model_refuses_an_infinite_price_in_its_window(store):
    uri, run_id = store
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pd.read_csv(SYNTHETIC, parse_dates=["Date"]).tail(40)[["Date", "Adj Close"]]
    frame = frame.reset_index(drop=True)
    frame.loc[30, "Adj Close"] = np.inf
    with pytest.raises(MlflowException) as error:  # what the scoring server answers with a 400
        model.predict(frame)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    assert error.value.message == (
        "input: row 30: price 'inf' in column 'Adj Close' is not a finite number (write plain "
        "numbers like 1234.5, without thousands separators or currency signs). Fix: correct "
        "that cell, or set data.price_column=<name> if the prices are in another column."
    )


def test_the_logged_model_refuses_a_state_holding_nan(store):
    uri, run_id = store
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    frame = pd.read_csv(SYNTHETIC, parse_dates=["Date"]).tail(40)[["Date", "Adj Close"]]
    state = model.predict(frame, params={"return_state": True})["state"]
    state[0] = float("nan")
    with pytest.raises(MlflowException) as error:
        model.predict(frame.tail(3), params={"initial_state": state})
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    assert error.value.message == (
        "initial state layer 0 c holds NaN or infinite values; a state comes from an earlier "
        "forecast of the same model, unchanged."
    )


# -- price files: `load_prices`, the one validator ---------------------------------------------

YAHOO = "Date,Open,High,Low,Close,Adj Close,Volume\n"
FIX_CELL = (
    "Fix: correct that cell, or set data.price_column=<name> if the prices are in another column."
)
NOT_A_NUMBER = (
    "is not a finite number (write plain numbers like 1234.5, without thousands separators or "
    f"currency signs). {FIX_CELL}"
)
NOT_POSITIVE = (
    "is not positive; prices must be > 0 because the model uses log returns. Fix: correct or "
    "remove that row, or set data.price_column=<name> if the prices are in another column."
)
NOT_ISO = (
    "is not an ISO 8601 date such as 2010-01-04 or 2010-01-04 16:00:00. Fix: correct that cell, "
    "or set data.date_column=<name> if the dates are in another column."
)
UNPARSEABLE = "cannot be parsed as a UTF-8 comma-separated file near line"
PARSE_FIX = "Fix: export the data as a plain CSV or point data.path=... at one."


@dataclass(frozen=True)
class DataCase:
    id: str
    content: str | bytes | None  # the file's content; None: no file at all
    message: str  # exact; {path} is the file's absolute path
    kwargs: tuple = ()  # load_prices keyword arguments


DATA_CASES = [
    DataCase(
        "missing file",
        None,
        "Price file {path} does not exist. Fix: point data.path=... at a CSV file (a relative "
        "path is resolved from the working directory).",
    ),
    DataCase(
        "empty file",
        "",
        "{path}: the file is empty. Fix: point data.path=... at a CSV with a header line and "
        "one row per date.",
    ),
    DataCase(
        "blank lines only",
        "\n  \n\n",
        "{path}: the file is empty. Fix: point data.path=... at a CSV with a header line and "
        "one row per date.",
    ),
    DataCase(
        "header only",
        YAHOO,
        "{path}: has a header (columns ['Date', 'Open', 'High', 'Low', 'Close', 'Adj Close', "
        "'Volume']) but no data rows. Fix: point data.path=... at a CSV with one row per date.",
    ),
    DataCase(
        "not UTF-8 text",
        b"Date,Close\n2020-01-02,\xff\xfe\x00\x81\n",
        f"{{path}}: {UNPARSEABLE} 2 (byte b'\\xff' is not UTF-8). {PARSE_FIX}",
    ),
    DataCase(
        "quote never closed",
        'Date,Close\n2020-01-02,1\n2020-01-03,"2\n2020-01-06,3\n',
        f"{{path}}: {UNPARSEABLE} 3 (unexpected end of data). {PARSE_FIX}",
    ),
    DataCase(
        "row with too many fields (unquoted thousands separator)",
        "Date,Close\n2020-01-02,1\n2020-01-03,1,234\n",
        "{path}: line 3 has 3 fields but the header has 2 (['Date', 'Close']); value "
        "'2020-01-03,1,234'. A shifted row would put the wrong number in the price column. Fix: "
        "repair that line (quote cells that contain commas).",
    ),
    DataCase(
        "row with too few fields",
        YAHOO + "2020-01-02,10,11,9,10.5\n",
        "{path}: line 2 has 5 fields but the header has 7 (['Date', 'Open', 'High', 'Low', "
        "'Close', 'Adj Close', 'Volume']); value '2020-01-02,10,11,9,10.5'. A shifted row would "
        "put the wrong number in the price column. Fix: repair that line (quote cells that "
        "contain commas).",
    ),
    DataCase(
        "missing date column",
        "Day,Close\n2020-01-02,1\n",
        "{path}: date column 'Date' not found; columns found: ['Day', 'Close']. Fix: set "
        "data.date_column=<name> to the column that holds the dates.",
    ),
    DataCase(
        "missing named price column",
        "Date,Close\n2020-01-02,1\n",
        "{path}: price column 'Price' not found; columns found: ['Date', 'Close']. Fix: set "
        "data.price_column=<name> to one of those columns.",
        (("price_column", "Price"),),
    ),
    DataCase(
        "no default price column",
        "Date,Last\n2020-01-02,1\n",
        "{path}: no price column given and neither 'Adj Close' nor 'Close' found; columns "
        "found: ['Date', 'Last']. Fix: set data.price_column=<name>.",
    ),
    DataCase(
        "semicolon-separated file",
        "Date;Close\n2020-01-02;1\n",
        "{path}: date column 'Date' not found; columns found: ['Date;Close']. The file must be "
        "comma-separated. Fix: set data.date_column=<name> to the column that holds the dates.",
    ),
    DataCase(
        "tab-separated file",
        "Date\tClose\n2020-01-02\t1\n",
        "{path}: date column 'Date' not found; columns found: ['Date\\tClose']. The file must be "
        "comma-separated. Fix: set data.date_column=<name> to the column that holds the dates.",
    ),
    DataCase(
        "duplicate price column",
        "Date,Close,Close\n2020-01-02,1,2\n",
        "{path}: column 'Close' appears 2 times in the header ['Date', 'Close', 'Close']. Fix: "
        "rename the duplicate columns so 'Close' is unambiguous.",
    ),
    DataCase(
        "duplicate date column",
        "Date,Date,Close\n2020-01-02,2020-01-02,2\n",
        "{path}: column 'Date' appears 2 times in the header ['Date', 'Date', 'Close']. Fix: "
        "rename the duplicate columns so 'Date' is unambiguous.",
    ),
    DataCase(
        "date column given as the price column",
        "Date,Close\n2020-01-02,1\n",
        "{path}: the date and price column are both 'Date'. Fix: set data.price_column=<name> "
        "to the column that holds prices.",
        (("price_column", "Date"),),
    ),
    DataCase(
        "unparseable date",
        "Date,Close\n2020-01-02,1\n2020-01-03,2\nyesterday,3\n",
        f"{{path}}: line 4: date 'yesterday' in column 'Date' {NOT_ISO}",
    ),
    DataCase(
        "empty date cell",
        "Date,Close\n2020-01-02,1\n,2\n",
        f"{{path}}: line 3: date '' in column 'Date' {NOT_ISO}",
    ),
    DataCase(
        "US-style date",
        "Date,Close\n1/4/1999,1\n",
        f"{{path}}: line 2: date '1/4/1999' in column 'Date' {NOT_ISO}",
    ),
    DataCase(
        "day-first date",
        "Date,Close\n31/12/2020,1\n",
        f"{{path}}: line 2: date '31/12/2020' in column 'Date' {NOT_ISO}",
    ),
    DataCase(
        "impossible date",
        "Date,Close\n2020-02-28,1\n2020-02-30,2\n",
        f"{{path}}: line 3: date '2020-02-30' in column 'Date' {NOT_ISO}",
    ),
    DataCase(
        "dates out of order",
        "Date,Close\n2020-01-02,1\n2020-01-06,2\n2020-01-03,3\n2020-01-07,4\n",
        "{path}: line 4: date '2020-01-03' in column 'Date' is earlier than '2020-01-06' on line "
        "3; dates must be sorted ascending. Fix: sort the file by date, oldest first.",
    ),
    DataCase(
        "repeated date",
        "Date,Close\n2020-01-02,1\n2020-01-03,2\n2020-01-03,3\n",
        "{path}: line 4: date '2020-01-03' in column 'Date' repeats the date on line 3; each "
        "date must appear once. Fix: remove the duplicate row.",
    ),
    DataCase(
        "the first date problem in the file is the one reported",
        "Date,Close\n2020-01-02,1\n2020-01-02,2\n2020-01-06,3\n2020-01-03,4\n",
        "{path}: line 3: date '2020-01-02' in column 'Date' repeats the date on line 2; each "
        "date must appear once. Fix: remove the duplicate row.",
    ),
    DataCase(
        "line numbers count blank lines and multi-line cells",
        'Date,Close,Note\n2020-01-02,1,ok\n\n2020-01-03,2,"two\nlines"\nbad-date,3,x\n',
        f"{{path}}: line 6: date 'bad-date' in column 'Date' {NOT_ISO}",
    ),
    DataCase(
        "a repeated timestamp, whatever its offset says",
        "Date,Close\n2020-01-06T00:00:00+09:00,1\n2020-01-06T00:00:00+09:00,2\n",
        "{path}: line 3: date '2020-01-06T00:00:00+09:00' in column 'Date' repeats the date on "
        "line 2; each date must appear once. Fix: remove the duplicate row.",
    ),
    DataCase(
        "price that is not a number",
        "Date,Close\n2020-01-02,1\n2020-01-03,abc\n",
        f"{{path}}: line 3: price 'abc' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "thousands separator",
        'Date,Close\n2020-01-02,"1,234"\n',
        f"{{path}}: line 2: price '1,234' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "decimal comma",
        'Date,Close\n2020-01-02,"12,5"\n',
        f"{{path}}: line 2: price '12,5' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "currency sign",
        "Date,Close\n2020-01-02,$12.50\n",
        f"{{path}}: line 2: price '$12.50' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "percent sign",
        "Date,Close\n2020-01-02,12%\n",
        f"{{path}}: line 2: price '12%' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "infinite price",
        "Date,Close\n2020-01-02,1\n2020-01-03,inf\n",
        f"{{path}}: line 3: price 'inf' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "minus infinity",
        "Date,Close\n2020-01-02,-inf\n",
        f"{{path}}: line 2: price '-inf' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "price beyond float64",
        "Date,Close\n2020-01-02,1e999\n",
        f"{{path}}: line 2: price '1e999' in column 'Close' {NOT_A_NUMBER}",
    ),
    DataCase(
        "zero price",
        "Date,Close\n2020-01-02,1\n2020-01-03,2\n2020-01-06,0\n",
        f"{{path}}: line 4: price '0' in column 'Close' {NOT_POSITIVE}",
    ),
    DataCase(
        "negative price",
        "Date,Close\n2020-01-02,1\n2020-01-03,2\n2020-01-06,-1.5\n",
        f"{{path}}: line 4: price '-1.5' in column 'Close' {NOT_POSITIVE}",
    ),
    DataCase(
        "every price empty",
        "Date,Close\n2020-01-02,\n2020-01-03,nan\n",
        "{path}: every cell of price column 'Close' is empty, so there is no price to "
        "forecast. Fix: choose a column that holds prices with data.price_column=<name>.",
    ),
]


@pytest.mark.parametrize("case", DATA_CASES, ids=lambda c: c.id)
def test_data_case(case, tmp_path):
    path = tmp_path / "prices.csv"
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    elif case.content is not None:
        path.write_text(case.content, encoding="utf-8")
    with pytest.raises(DataError) as error:
        load_prices(path, **dict(case.kwargs))
    assert str(error.value) == case.message.format(path=path.resolve())


def test_a_directory_is_not_a_price_file(tmp_path):
    with pytest.raises(DataError) as error:
        load_prices(tmp_path)
    assert str(error.value) == (
        f"Price file {tmp_path.resolve()} is a directory, not a file. Fix: point data.path=... "
        "at a CSV file (a relative path is resolved from the working directory)."
    )


FRAME_CASES = [
    (
        "frame without the price column",
        pd.DataFrame({"Date": ["2020-01-02"], "Close": [1.0]}),
        "input: no 'Adj Close' column (the price column the model was trained on); columns "
        "found: ['Date', 'Close']. Fix: send the prices in a column named 'Adj Close'.",
    ),
    (
        "frame with an empty price",
        pd.DataFrame({"Date": ["2020-01-02", "2020-01-03"], "Adj Close": [1.0, np.nan]}),
        "input: row 1: price nan in column 'Adj Close' is empty; every row must hold a price, "
        "oldest first. Fix: drop or fill that row before sending.",
    ),
    (
        "frame with an infinite price",
        pd.DataFrame({"Date": ["2020-01-02", "2020-01-03"], "Adj Close": [1.0, -np.inf]}),
        f"input: row 1: price '-inf' in column 'Adj Close' {NOT_A_NUMBER}",
    ),
    (
        "frame with a date that is not ISO 8601",
        pd.DataFrame({"Date": ["2020-01-02", "03.01.2020"], "Adj Close": [1.0, 2.0]}),
        f"input: row 1: date '03.01.2020' in column 'Date' {NOT_ISO}",
    ),
]


@pytest.mark.parametrize("name, frame, message", FRAME_CASES, ids=[c[0] for c in FRAME_CASES])
def test_frame_case(name, frame, message):
    with pytest.raises(DataError) as error:
        prices_from_frame(frame, date_column="Date", price_column="Adj Close")
    assert str(error.value) == message


def test_the_catalogue_holds_every_case_once():
    names = [c.id for c in COMMAND_CASES] + [c.id for c in DATA_CASES]
    assert len(names) == len(set(names))
    assert len(DATA_CASES) + len(FRAME_CASES) + 1 >= 37  # the data cases the issue counted

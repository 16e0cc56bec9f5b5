"""The Python API (`forecaster.api.Forecaster`) end to end, and its one-to-one map onto the
config: the same parameters give the very metrics `python -m forecaster train` logs."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, TINY
from mlflow.tracking import MlflowClient

from forecaster.api import PARAMETERS, Forecaster
from forecaster.cli.config import DataConf, TrainAppConf
from forecaster.cli.train import train
from forecaster.errors import DataError

pytestmark = pytest.mark.slow

SYNTHETIC = REPO_ROOT / "data" / "synthetic.csv"
# TINY's window, model and train keys, as constructor arguments.
TINY_PARAMS = dict(
    lookback=20, horizon=5, num_units=8, epochs=2, batch_size=128, intra_op_threads=1
)


def test_every_parameter_is_a_config_key_with_its_default():
    schema = TrainAppConf(data=DataConf(path="x.csv"))
    for name, parameter in PARAMETERS.items():
        node = schema
        for part in parameter.key.split("."):
            node = getattr(node, part)
        assert node == parameter.default, parameter.key
        assert parameter.key.rsplit(".", 1)[-1] == name
    signature = inspect.signature(Forecaster)
    assert list(signature.parameters) == list(PARAMETERS)
    assert signature.parameters["horizon"].default == 5
    with pytest.raises(TypeError, match=r"unknown parameter\(s\) \['horizn'\]"):
        Forecaster(horizn=5)


@pytest.fixture(scope="module")
def fitted():
    prices = pd.read_csv(SYNTHETIC, parse_dates=["Date"], index_col="Date")["Adj Close"]
    model = Forecaster(**TINY_PARAMS, calendar="XNYS").fit(prices)
    yield model
    model.close()


def test_fit_gives_the_metrics_the_cli_logs_for_the_same_keys(fitted, tiny_config):
    cli = train(tiny_config("data.calendar=XNYS"))
    assert fitted.overrides() == [
        "window.lookback=20", "model.num_units=8", "train.epochs=2", "train.batch_size=128",
        "train.intra_op_threads=1", "data.calendar=XNYS",
    ]  # fmt: skip
    assert set(TINY) >= {o for o in fitted.overrides() if "calendar" not in o}
    for name in ("test_mae", "naive_test_mae", "best_baseline_test_mae", "best_val_loss"):
        assert fitted.metrics_[name] == cli[name], name


def test_predict_is_a_tidy_frame_dated_on_the_exchange_calendar(fitted):
    frame = fitted.predict()
    assert list(frame.columns) == ["date", "step", "forecast"]
    assert list(frame["step"]) == [1, 2, 3, 4, 5]
    # The data ends on Friday 2019-08-30; Monday 2019-09-02 is Labor Day.
    assert frame["date"].iloc[0] == pd.Timestamp("2019-09-03")
    assert np.all(np.isfinite(frame["forecast"])) and np.all(frame["forecast"] > 0)
    # Forecasting from an earlier cut of the series: from its last bar.
    earlier = fitted.prices_.loc[:"2019-06-28"]
    assert fitted.predict(earlier)["date"].iloc[0] == pd.Timestamp("2019-07-01")


def test_save_and_load_forecast_the_same(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    loaded = Forecaster.load(path)
    assert loaded.get_params() == fitted.get_params()
    assert loaded.metrics_ == pytest.approx(fitted.metrics_)
    pd.testing.assert_frame_equal(
        loaded.predict(fitted.prices_), fitted.predict(), check_exact=False, rtol=1e-5
    )


def test_to_mlflow_logs_a_run_with_config_keys_metrics_and_the_model(fitted, tracking_uri):
    run_id = fitted.to_mlflow(tracking_uri, experiment_name="notebook")
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["window.horizon"] == "5"
    assert run.data.params["model.num_units"] == "8"
    assert run.data.metrics["test_mae"] == pytest.approx(fitted.metrics_["test_mae"])
    assert len(run.outputs.model_outputs) == 1  # the logged model
    (logged,) = MlflowClient(tracking_uri).search_logged_models([run.info.experiment_id])
    assert logged.name == "model" and logged.source_run_id == run_id


def test_backtest_walks_the_model_and_its_baselines(fitted):
    table = fitted.backtest(test_fraction=0.1)
    assert {"seq2seq", "naive", "drift", "ridge"} <= set(table["model"])
    assert np.all(np.isfinite(table["mae"]))


def test_fit_refuses_undated_prices():
    with pytest.raises(ValueError, match="prices need a DatetimeIndex"):
        Forecaster().fit(pd.Series([1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match=r"set the dates as the index"):
        Forecaster().fit(pd.DataFrame({"A": [1.0, 2.0], "B": [1.0, 2.0]}))


PANEL_TICKERS = ["SP500", "EURUSD", "KO"]


def test_fit_on_a_panel_long_or_wide_trains_one_global_model(tracking_uri):
    long = pd.read_csv(REPO_ROOT / "data" / "panel.csv", parse_dates=["date"])
    long = long[long["ticker"].isin(PANEL_TICKERS)][["date", "ticker", "price"]]
    # Tickers in the order given: a wide frame's columns, a long frame's first appearances.
    order = list(dict.fromkeys(long["ticker"]))
    wide = long.pivot(index="date", columns="ticker", values="price")[order]
    params = TINY_PARAMS | {"epochs": 1}
    with Forecaster(**params).fit(wide) as from_wide, Forecaster(**params).fit(long) as from_long:
        assert from_wide.metrics_ == from_long.metrics_  # the same panel either way
        summary = from_wide.test_summary_
        assert list(summary["model"]) == ["model", "naive", "drift", "ridge"]
        assert from_wide.metrics_["panel_test_gmean_mae_vs_naive"] == pytest.approx(
            summary["gmean_mae_vs_naive"].iloc[0]
        )
        table = from_wide.test_per_series_
        assert sorted(set(table["ticker"])) == sorted(PANEL_TICKERS) and len(table) == 12

        forecasts = from_wide.predict()  # every ticker, after its own last bar
        assert list(forecasts.columns[:2]) == ["ticker", "date"]
        for ticker, rows in forecasts.groupby("ticker"):
            assert rows["date"].min() > wide[ticker].dropna().index[-1]
            assert len(rows) == 5 and np.all(np.isfinite(rows["forecast"]))
        new = from_wide.predict(wide["KO"].dropna() * 3.0)  # an unknown ticker, cold
        assert new["ticker"].isna().all() and np.all(new["forecast"] > 0)

        run_id = from_wide.to_mlflow(tracking_uri)
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.data.metrics["panel_test_gmean_mae_vs_naive"] == pytest.approx(
        from_wide.metrics_["panel_test_gmean_mae_vs_naive"]
    )

"""The walk-forward backtest: folds, same origins for every model, the report, the audit."""

from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, compose_config
from mlflow.tracking import MlflowClient

from forecaster.data import WindowConfig, load_prices
from forecaster.errors import ConfigError, DataError
from forecaster.evaluation.backtest import (
    BacktestConfig,
    LeakageError,
    audit,
    by_step,
    forecasts_frame,
    plan_folds,
    summary,
    verdict,
    walk_forward,
)
from forecaster.models import REGISTRY, create
from forecaster.models.base import Forecast, check_origins
from forecaster.models.seq2seq.forecaster import Seq2SeqForecaster
from forecaster.models.seq2seq.spec import Seq2SeqConfig
from forecaster.training import TrainConfig

HORIZON = 5


def bars(n: int) -> pd.Series:
    rng = np.random.default_rng(0)
    values = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.Series(values, index=pd.bdate_range("2020-01-01", periods=n), name="close")


# -- folds -------------------------------------------------------------------------------------


def test_origins_tile_the_span_and_each_fold_fits_only_on_bars_up_to_its_first_origin():
    prices = bars(100)
    config = BacktestConfig(models=["naive"], test_fraction=0.2, refit_every=10)
    folds = plan_folds(prices, HORIZON, config)
    # The span is the last 20 bars: the first origin is the bar before it, then every 5 bars
    # while 5 bars remain after the origin.
    assert [list(f.origins) for f in folds] == [[79, 84], [89, 94]]
    assert [(f.fit_start, f.val_start, f.fit_stop) for f in folds] == [(0, 68, 80), (0, 76, 90)]
    # A target never precedes its origin, and targets of consecutive origins never overlap.
    origins = np.concatenate([f.origins for f in folds])
    assert np.all(np.diff(origins) == HORIZON)

    once = plan_folds(prices, HORIZON, BacktestConfig(models=["naive"], test_fraction=0.2))
    assert len(once) == 1 and list(once[0].origins) == [79, 84, 89, 94]


def test_a_rolling_window_fits_on_the_last_train_size_bars():
    config = BacktestConfig(models=["naive"], refit_every=10, window="rolling", train_size=50)
    folds = plan_folds(bars(100), HORIZON, config)
    assert [(f.fit_start, f.fit_stop) for f in folds] == [(30, 80), (40, 90)]


def test_the_span_can_start_at_a_date_and_stride_can_overlap_targets():
    prices = bars(100)
    config = BacktestConfig(models=["naive"], start=str(prices.index[90].date()), stride=1)
    [fold] = plan_folds(prices, HORIZON, config)
    assert list(fold.origins) == [89, 90, 91, 92, 93, 94]  # the first target is the start date


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(refit_every=-1), r"backtest\.refit_every=-1 is invalid: expected an integer >= 0"),
        (dict(models=["naive", "lstm"]), r"unknown model\(s\) \['lstm'\]; choose from"),
        (dict(window="sliding"), r"backtest\.window='sliding' is invalid"),
        (dict(window="rolling"), r"backtest\.window=rolling needs backtest\.train_size"),
        (dict(start="yesterday-ish"), r"backtest\.start='yesterday-ish' is not a date"),
        (dict(test_fraction=1.5), r"backtest\.test_fraction=1\.5 is invalid"),
    ],
)
def test_bad_backtest_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        BacktestConfig(**{"models": ["naive"], **kwargs})


def test_a_span_without_room_for_one_forecast_says_how_to_fix_it():
    prices = bars(100)
    with pytest.raises(DataError, match=r"backtest\.start=2030-01-01 is after the last bar"):
        plan_folds(prices, HORIZON, BacktestConfig(models=["naive"], start="2030-01-01"))
    with pytest.raises(DataError, match="the backtest span holds no forecast origin"):
        plan_folds(prices, HORIZON, BacktestConfig(models=["naive"], test_fraction=0.03))


def test_a_fold_too_short_for_a_model_names_the_fold_and_the_keys():
    prices = bars(300)
    config = BacktestConfig(models=["ridge"], refit_every=20, window="rolling", train_size=40)
    factories = {"ridge": lambda: create("ridge", horizon=HORIZON, lookback=30)}
    with pytest.raises(DataError, match=r"backtest fold 1 \(fitted on .* model ridge: .*backtest"):
        walk_forward(prices, factories, config, HORIZON)


# -- every model, same origins, one report -------------------------------------------------------


@pytest.fixture(scope="module")
def sp500() -> pd.Series:
    return load_prices(REPO_ROOT / "data" / "sp500.csv").prices


def tiny_factories(lookback: int = 10) -> dict:
    window = WindowConfig(lookback=lookback, horizon=HORIZON)
    params = {
        "seq2seq": dict(
            window=window,
            model=Seq2SeqConfig(num_units=4),
            train=TrainConfig(epochs=2, batch_size=256, intra_op_threads=1),
            seed=3,
        ),
        "ridge": dict(horizon=HORIZON, lookback=lookback),
    }
    return {
        name: (lambda name=name: create(name, **params.get(name, {"horizon": HORIZON})))
        for name in REGISTRY
    }


@pytest.fixture(scope="module")
def every_model(sp500):
    """Every registered model, walked through the last 60 bars of the S&P 500 in 2 folds."""
    config = BacktestConfig(models=list(REGISTRY), start="2018-10-01", refit_every=30)
    factories = tiny_factories()
    return walk_forward(sp500, factories, config, HORIZON), factories, config


def test_every_model_forecasts_every_origin_of_the_span(every_model):
    result, _, _ = every_model
    assert set(result.forecasts) == set(REGISTRY)
    assert len(result.folds) == 2
    for forecast in result.forecasts.values():
        assert forecast.shape == (len(result.origins), HORIZON)
        assert np.all(np.isfinite(forecast))
    np.testing.assert_array_equal(
        result.forecasts["naive"], np.repeat(result.origin_prices[:, None], HORIZON, axis=1)
    )


def test_the_report_scores_each_model_against_the_random_walk_on_the_same_origins(every_model):
    result, _, _ = every_model
    table = summary(result).set_index("model")
    assert table.loc["naive", "mae_vs_naive"] == 1.0
    frame = forecasts_frame(result)
    assert len(frame) == len(REGISTRY) * len(result.origins) * HORIZON
    for name, rows in frame.groupby("model"):
        mae = np.abs(rows["forecast"] - rows["actual"]).mean()
        assert table.loc[name, "mae"] == pytest.approx(mae, rel=1e-12)
        assert table.loc[name, "mae_vs_naive"] == pytest.approx(mae / table.loc["naive", "mae"])
    up = (frame["actual"] > frame["origin_price"]).mean()  # the "always up" forecaster's hits
    assert table["up_share"].nunique() == 1 and table["up_share"].iloc[0] == pytest.approx(up)
    assert table.loc["seq2seq", "kind"] == "model"
    assert result.best_baseline() == table.drop(index="seq2seq")["mae"].idxmin()
    steps = by_step(result)
    assert len(steps) == len(REGISTRY) * HORIZON
    naive_steps = steps[steps["model"] == "naive"]
    assert (naive_steps["mae_vs_naive"] == 1.0).all()
    rows = table.reset_index().set_index("model", drop=False)
    assert verdict(rows.loc["seq2seq"]).startswith(("beats", "no better", "worse"))
    assert verdict(rows.loc["naive"]) == "the random walk itself: the reference"


def test_the_audit_passes_for_every_registered_model_on_bundled_data(every_model):
    result, factories, config = every_model
    checked = audit(result, factories, config)
    assert len(checked.origins) == config.audit_origins
    assert set(checked.models) == set(REGISTRY)


class PeekingForecaster:
    """Forecasts tomorrow's actual price: perfect, and a leak."""

    min_history = 1

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon

    def fit(self, train: pd.Series, val: pd.Series | None = None) -> Self:
        return self

    def predict(self, prices: pd.Series, origins: np.ndarray) -> Forecast:
        origins = check_origins(prices, origins, self.min_history)
        tomorrow = np.asarray(prices)[np.minimum(origins + 1, len(prices) - 1)]
        return Forecast(origins, np.repeat(tomorrow[:, None], self.horizon, axis=1))


def test_the_audit_catches_a_model_that_peeks(sp500):
    config = BacktestConfig(models=["naive", "drift"], start="2018-11-01")
    factories = {"naive": lambda: create("naive", horizon=HORIZON)}
    factories["peeker"] = lambda: PeekingForecaster(HORIZON)
    result = walk_forward(sp500, factories, config, HORIZON)
    assert summary(result).set_index("model").loc["peeker", "mae_vs_naive"] < 0.97  # too good
    with pytest.raises(LeakageError, match=r"peeker at origin 2018-10-31: forecast moved by"):
        audit(result, factories, config)


# -- the seq2seq across folds ----------------------------------------------------------------


def test_a_refit_reuses_the_graph_and_equals_a_fresh_model(sp500):
    factory = tiny_factories()["seq2seq"]
    first, second = sp500.iloc[:3000], sp500.iloc[:3500]
    origins = np.arange(3600, 3650)
    reused = factory()
    reused.fit(first.iloc[:-400], first.iloc[-400:])
    network = reused.network_
    reused.fit(second.iloc[:-400], second.iloc[-400:])
    assert reused.network_ is network  # no second graph built
    with factory() as fresh:
        fresh.fit(second.iloc[:-400], second.iloc[-400:])
        np.testing.assert_array_equal(
            reused.predict(sp500, origins).prices, fresh.predict(sp500, origins).prices
        )
    reused.close()


def test_warm_start_refits_from_the_weights_the_last_fit_ended_with(sp500):
    model: Seq2SeqForecaster = tiny_factories()["seq2seq"]()
    model.warm_start = True
    model.fit(sp500.iloc[:2600], sp500.iloc[2600:3000])
    ended_with = model.network_.get_weights()
    started_from = []
    original = model.network_.set_weights
    model.network_.set_weights = lambda weights: (started_from.append(weights), original(weights))
    model.fit(sp500.iloc[:3100], sp500.iloc[3100:3500])
    for name, value in ended_with.items():
        np.testing.assert_array_equal(started_from[0][name], value)
    model.close()


# -- the command ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_backtest_command_logs_a_parent_run_with_the_report_and_a_child_per_fold(tmp_path):
    from forecaster.cli.backtest import backtest

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_config(
        "backtest",
        [
            "data=synthetic",
            f"tracking.uri={uri}",
            "window.lookback=10",
            "model.num_units=4",
            "train.epochs=2",
            "train.batch_size=256",
            "train.intra_op_threads=1",
            "backtest.models=[seq2seq,naive,drift,ridge]",
            "backtest.start=2019-06-03",
            "backtest.refit_every=30",
            "backtest.audit=true",
            "backtest.audit_origins=2",
        ],
    )
    table = backtest(cfg, run_name="backtest test")
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    # 2019-05-31 to 2019-08-23 every 5 bars: 13 origins; refits every 30 bars: 3 folds.
    assert parent.data.metrics["backtest/origins"] == 13
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert {c.info.run_name for c in children} == {f"seq2seq fold {k}" for k in (1, 2, 3)}
    assert all(len(client.get_metric_history(c.info.run_id, "val_loss")) == 2 for c in children)
    metrics = parent.data.metrics
    row = table.set_index("model").loc["seq2seq"]
    assert metrics["backtest/seq2seq/mae_vs_naive"] == pytest.approx(row["mae_vs_naive"])
    assert metrics["backtest/naive/mae_vs_naive"] == 1.0
    assert 0 <= metrics["backtest/seq2seq/dm_naive_absolute_p"] <= 1
    assert parent.data.tags["backtest.audit"].startswith("passed at origins")
    assert "| **seq2seq** |" in parent.data.tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "backtest")}
    assert {
        "backtest/summary.csv",
        "backtest/by_step.csv",
        "backtest/forecasts.parquet",
        "backtest/summary.md",
    } <= artifacts
    local = client.download_artifacts(
        parent.info.run_id, "backtest/forecasts.parquet", str(tmp_path)
    )
    forecasts = pd.read_parquet(local)
    assert len(forecasts) == 4 * 13 * HORIZON
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "plots")} == {
        "plots/backtest.png"
    }

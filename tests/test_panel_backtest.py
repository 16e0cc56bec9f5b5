"""The panel backtest: every series walked as a single series is, from one span start, and a
summary over series (geometric-mean MAE ratio, series worse than naive, direction)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import compose_config, panel_of
from mlflow.tracking import MlflowClient

from forecaster.data.panel import Panel
from forecaster.errors import DataError
from forecaster.evaluation.backtest import BacktestConfig, plan_folds, walk_forward
from forecaster.evaluation.panel_backtest import (
    panel_summary,
    per_series,
    ratio_table,
    span_start,
    walk_panel,
)
from forecaster.models import create

HORIZON = 5
MODELS = {name: (lambda name=name: create(name, horizon=HORIZON)) for name in ("naive", "drift")}


def walk(dates: pd.DatetimeIndex, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates)))), index=dates)


def sample_panel() -> Panel:
    us = pd.bdate_range("2020-01-01", periods=300)
    fx = us.drop(us[[50, 120, 121]]).union(pd.DatetimeIndex(["2020-02-01", "2020-06-06"]))
    return panel_of(US=walk(us, 0), FX=walk(fx, 1), LATE=walk(us[60:], 2))


def test_every_series_is_walked_from_one_span_start_as_a_single_series_would_be():
    panel = sample_panel()
    config = BacktestConfig(models=list(MODELS), test_fraction=0.2)
    result = walk_panel(panel, MODELS, config, HORIZON)
    calendar = panel.calendar
    assert result.start == calendar[len(calendar) - round(len(calendar) * 0.2)]
    for ticker, r in result.results.items():
        prices = panel.prices(ticker)
        # The first target of every series is its first bar on or after the common start.
        first_target = prices.index[r.origins[0] + 1]
        assert first_target == prices.index[prices.index >= result.start][0]
        alone = walk_forward(
            prices, MODELS, replace(config, start=str(result.start.date())), HORIZON
        )
        for name in ("naive", "drift"):
            assert np.array_equal(r.forecasts[name], alone.forecasts[name])
        assert r.folds[0].fit_stop == r.origins[0] + 1  # nothing after the first origin


def test_a_one_series_panel_spans_what_the_single_series_backtest_spans():
    prices = walk(pd.bdate_range("2021-01-01", periods=257), 3)
    config = BacktestConfig(models=list(MODELS), test_fraction=0.2)
    start = span_start(panel_of(X=prices), config)
    [single] = plan_folds(prices, HORIZON, config)
    assert prices.index[single.origins[0] + 1] == start


def test_a_series_the_span_leaves_no_room_in_is_named_with_the_fix():
    us = pd.bdate_range("2020-01-01", periods=300)
    panel = panel_of(US=walk(us, 0), OLD=walk(us[:200], 1))
    with pytest.raises(DataError) as info:
        walk_panel(panel, MODELS, BacktestConfig(models=list(MODELS)), HORIZON)
    assert "ticker 'OLD'" in str(info.value) and "data.tickers=[...]" in str(info.value)


def test_the_summary_over_series_counts_what_the_issue_asks():
    rows = [
        # ticker, ratio, accuracy, up share, DM p
        ("A", 0.90, 0.60, 0.50, 0.01),
        ("B", 1.02, 0.40, 0.55, 0.50),  # exactly 2 % worse: not counted as worse
        ("C", 1.0201, 0.52, 0.51, 0.03),
        ("D", 1.10, 0.45, 0.50, 0.20),
    ]
    table = pd.DataFrame(
        [
            {
                "ticker": t,
                "model": "m",
                "kind": "baseline",
                "mae_vs_naive": r,
                "directional_accuracy": a,
                "up_share": u,
                "dm_naive_absolute_p": p,
                "seconds": 1.0,
            }
            for t, r, a, u, p in rows
        ]
    )
    [row] = panel_summary(table).to_dict("records")
    assert row["gmean_mae_vs_naive"] == pytest.approx((0.9 * 1.02 * 1.0201 * 1.1) ** 0.25)
    assert row["worse_than_naive"] == 2 and row["better_than_naive"] == 1
    assert (row["worst_series"], row["worst_mae_vs_naive"]) == ("D", 1.10)
    assert row["directional_accuracy"] == pytest.approx(np.mean([0.6, 0.4, 0.52, 0.45]))
    assert row["accuracy_minus_up_share"] == pytest.approx(np.mean([0.1, -0.15, 0.01, -0.05]))
    assert row["beats_up_share"] == 2
    assert (row["significantly_better"], row["significantly_worse"]) == (1, 1)
    assert row["series"] == 4 and row["seconds"] == 4.0


def test_per_series_tables_hold_every_ticker_and_model():
    panel = sample_panel()
    result = walk_panel(panel, MODELS, BacktestConfig(models=list(MODELS)), HORIZON)
    table = per_series(result)
    assert list(table["ticker"].unique()) == ["US", "FX", "LATE"]
    assert set(table["model"]) == {"naive", "drift"}
    ratios = ratio_table(table)
    assert list(ratios.index) == ["US", "FX", "LATE"] and list(ratios["naive"]) == [1.0] * 3


def write_panel_files(folder: Path) -> Path:
    us = pd.bdate_range("2015-01-01", periods=400)
    for ticker, dates, seed in (("AAA", us, 0), ("BBB", us[5:], 1), ("CCC", us.drop(us[7]), 2)):
        frame = walk(dates, seed).rename("Close").rename_axis("Date").reset_index()
        frame.to_csv(folder / f"{ticker}.csv", index=False, date_format="%Y-%m-%d")
    return folder


def test_the_backtest_command_logs_one_run_for_a_panel(tmp_path):
    from forecaster.cli.backtest import backtest

    write_panel_files(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose_config(
        "backtest",
        [
            "data=files",
            f"data.paths=[{tmp_path}/*.csv]",
            f"tracking.uri={uri}",
            "window.lookback=10",
            "backtest.models=[naive,drift,ridge]",
            "backtest.audit=true",
            "backtest.audit_origins=1",
        ],
    )
    overall = backtest(cfg, run_name="panel test")
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    assert run.info.status == "FINISHED"
    metrics, tags = run.data.metrics, run.data.tags
    assert metrics["panel/series"] == 3
    by_model = overall.set_index("model")
    for model in ("naive", "drift", "ridge"):
        assert metrics[f"panel/{model}/gmean_mae_vs_naive"] == pytest.approx(
            by_model.loc[model, "gmean_mae_vs_naive"]
        )
    assert metrics["panel/naive/gmean_mae_vs_naive"] == 1.0
    assert tags["data.tickers"] == "3" and tags["backtest.audit"].startswith("passed")
    assert tags["data.files"] == "3 files" and len(tags["data.sha256"]) == 64
    assert "| ridge |" in tags["mlflow.note.content"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "panel")}
    assert {
        "panel/summary.csv",
        "panel/per_series.csv",
        "panel/mae_vs_naive.csv",
        "panel/by_step.csv",
        "panel/forecasts.parquet",
        "panel/summary.md",
        "panel/series",
    } <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "plots")] == ["plots/panel.png"]
    series = {a.path for a in client.list_artifacts(run.info.run_id, "panel/series")}
    assert series == {f"panel/series/{t}.csv" for t in ("AAA", "BBB", "CCC")}
    local = client.download_artifacts(run.info.run_id, "panel/forecasts.parquet", str(tmp_path))
    forecasts = pd.read_parquet(local)
    assert set(forecasts["ticker"]) == {"AAA", "BBB", "CCC"}
    sources = pd.read_csv(client.download_artifacts(run.info.run_id, "data/sources.csv"))
    assert list(sources["ticker"]) == ["AAA", "BBB", "CCC"]


def tiny_panel_backtest(tmp_path: Path) -> tuple[str, list[str]]:
    """Two of `write_panel_files`' series in `tmp_path`, backtested with a tiny seq2seq and the
    random walk, tracked to a store there: (its URI, the overrides)."""
    write_panel_files(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, [
        "data=files",
        f"data.paths=[{tmp_path}/*.csv]",
        "data.tickers=[AAA,CCC]",
        f"tracking.uri={uri}",
        "window.lookback=10",
        "model.num_units=4",
        "train.epochs=1",
        "train.intra_op_threads=1",
        "backtest.models=[seq2seq,naive]",
    ]


@pytest.mark.slow
def test_a_panel_backtest_fits_the_global_seq2seq_once_per_fold_as_a_child_run(tmp_path):
    from forecaster.cli.backtest import backtest

    uri, overrides = tiny_panel_backtest(tmp_path)
    overall = backtest(compose_config("backtest", overrides))
    assert set(overall["model"]) == {"seq2seq", "naive"}
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    # One global fit on every series (the fold's cut), not one per series.
    children = [r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert children == ["seq2seq all series fold 1"]
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.slow
def test_a_panel_backtest_can_fit_a_distributional_seq2seq_per_series(tmp_path):
    """backtest.panel_fit=per_series: one seq2seq per series and fold (a child run each), so a
    distributional model.output is scored on its intervals on every series."""
    from forecaster.cli.backtest import backtest

    uri, overrides = tiny_panel_backtest(tmp_path)
    per_series = [
        "model.output=quantiles",
        "model.calibration=scale",
        "model.ticker_embedding=0",
        "model.shrinkage=none",
        "backtest.panel_fit=per_series",
    ]
    backtest(compose_config("backtest", overrides + per_series))
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])
    children = sorted(r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert children == ["seq2seq AAA fold 1", "seq2seq CCC fold 1"]
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    local = client.download_artifacts(parent.info.run_id, "panel/per_series.csv", str(tmp_path))
    table = pd.read_csv(local).set_index(["ticker", "model"])
    for ticker in ("AAA", "CCC"):
        assert 0 < table.loc[(ticker, "seq2seq"), "coverage_90"] <= 1
        assert table.loc[(ticker, "seq2seq"), "pinball_scaled"] > 0

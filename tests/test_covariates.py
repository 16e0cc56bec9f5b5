"""Covariates of the global model (`model.covariates`): past ones into the encoder, computed
and scaled without look-ahead, missing bar fields flagged; the calendar into the decoder."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_global_model import SPLIT, TRAIN, WINDOW, panel_of, sample_panel, walk

from forecaster.data.covariates import (
    CALENDAR_FEATURES,
    FeatureScaler,
    calendar_features,
    forecast_calendar,
    series_features,
)
from forecaster.data.panel import Panel
from forecaster.errors import ConfigError, DataError
from forecaster.models.seq2seq.network import Seq2SeqModel, WindowInputs
from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster
from forecaster.models.seq2seq.spec import ModelSpec, Seq2SeqConfig

ALL = ["volatility", "volume", "range", "tickers", "calendar"]


def bars_for(prices: pd.Series, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spread = np.exp(rng.uniform(0.001, 0.02, len(prices)))
    return pd.DataFrame(
        {
            "open": prices.to_numpy(),
            "high": prices.to_numpy() * spread,
            "low": prices.to_numpy() / spread,
            "volume": rng.uniform(1e6, 2e6, len(prices)),
        },
        index=prices.index,
    )


def panel_with_bars() -> Panel:
    """The sample panel; A has open/high/low/volume, B and C a price only."""
    panel = sample_panel()
    a = panel.series[0]
    return Panel((replace(a, bar_fields=bars_for(a.prices, 4)), *panel.series[1:]))


def covariate_model(covariates=ALL, embedding: int = 2) -> GlobalSeq2SeqForecaster:
    return GlobalSeq2SeqForecaster(
        window=WINDOW,
        model=Seq2SeqConfig(num_units=6, ticker_embedding=embedding, covariates=list(covariates)),
        train=TRAIN,
        seed=3,
    )


def scaled_after(bars: pd.DataFrame, date: pd.Timestamp, factor: float) -> pd.DataFrame:
    changed = bars.copy()
    changed.loc[bars.index > date] *= factor
    return changed


class Recorder:
    """Wraps a network's `forecast` to keep the inputs it is fed."""

    def __init__(self, network: Seq2SeqModel) -> None:
        self.network, self.inputs = network, []
        self.forecast = network.forecast
        network.forecast = self

    def __call__(self, inputs: WindowInputs, **kwargs):
        self.inputs.append(inputs)
        return self.forecast(inputs, **kwargs)


def test_series_features_flag_missing_bar_fields_and_scale_on_training_rows_only():
    panel = panel_with_bars()
    names = ["volatility", "volume", "range"]
    with_bars = series_features(panel.prices("A"), panel["A"].bar_fields, names, 5)
    without = series_features(panel.prices("B"), None, names, 5)
    assert list(with_bars.columns) == [
        "volatility",
        "volume",
        "volume_present",
        "range",
        "range_present",
    ]
    scaled = FeatureScaler.fit(with_bars, 100).transform(with_bars)
    assert (scaled[1:, 2] == 1).all() and (scaled[:, 4] == 1).all()  # present after bar 0
    assert scaled[0, 2] == 0 and scaled[0, 1] == 0  # no volume change at the first bar
    scaled_b = FeatureScaler.fit(without, 100).transform(without)
    np.testing.assert_array_equal(scaled_b[:, 1:], 0.0)  # no bars: zeros, flags 0
    assert np.isfinite(scaled_b).all() and scaled_b[:, 0].std() > 0
    # The scaler reads rows before train_stop only.
    changed = with_bars.copy()
    changed.iloc[100:] *= 5.0
    fitted = FeatureScaler.fit(changed, 100)
    np.testing.assert_array_equal(fitted.means, FeatureScaler.fit(with_bars, 100).means)
    np.testing.assert_array_equal(fitted.stds, FeatureScaler.fit(with_bars, 100).stds)
    # Realised volatility at a bar uses returns up to that bar only.
    prices = panel.prices("B")
    later = prices.where(prices.index <= prices.index[120], prices * 1.5)
    np.testing.assert_array_equal(
        series_features(later, None, ["volatility"], 5).iloc[:121],
        series_features(prices, None, ["volatility"], 5).iloc[:121],
    )


def test_calendar_features_of_forecast_dates():
    dates = pd.DatetimeIndex(["2024-01-29", "2024-01-31", "2024-02-05"])
    features = calendar_features(dates)
    assert features.shape == (3, len(CALENDAR_FEATURES))
    assert features[1, 4] == 0.0 and features[0, 4] == pytest.approx(2 / 31)
    np.testing.assert_allclose(features[0, :2], features[2, :2])  # both Mondays
    index = pd.bdate_range("2024-01-01", periods=22)  # to Tuesday 30 January
    future = forecast_calendar(index, np.array([20, 21]), 3)
    # From Monday 29 January: Tue 30, Wed 31, Thu 1 February (trading weekdays only).
    np.testing.assert_array_equal(
        future[0], calendar_features(pd.DatetimeIndex(["2024-01-30", "2024-01-31", "2024-02-01"]))
    )


def test_decoder_covariates_reach_the_forecast():
    spec = ModelSpec(horizon=3, num_units=5, num_features=2, num_future=2)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 6, 2)).astype(np.float32)
    future = rng.normal(size=(4, 3, 2)).astype(np.float32)
    with Seq2SeqModel(spec, seed=1) as model:
        first = model.forecast(WindowInputs(values, future=future)).forecast
        other = future.copy()
        other[:, 2] += 1.0  # the last step's covariates only
        second = model.forecast(WindowInputs(values, future=other)).forecast
        np.testing.assert_array_equal(first[:, :2], second[:, :2])
        assert not np.allclose(first[:, 2], second[:, 2])
        with pytest.raises(ValueError, match="decoder covariates"):
            model.forecast(values)
        # Training runs with them too (teacher forcing and the loss).
        loss = model.train_step(WindowInputs(values, future=future), rng.normal(size=(4, 3)))
        assert np.isfinite(loss)


@pytest.mark.parametrize("ticker", ["A", "B", None])
def test_nothing_dated_after_the_origin_reaches_the_inputs(ticker):
    """Every price, bar field and other ticker's price dated after the origin replaced: the
    encoder inputs (values and past covariates) and the decoder's calendar are unchanged."""
    panel = panel_with_bars()
    with covariate_model() as model:
        model.fit_panel(panel, SPLIT)
        assert model.network_.spec.num_features == 1 + 1 + 2 + 2 + 3
        assert model.network_.spec.num_future == len(CALENDAR_FEATURES)
        recorder = Recorder(model.network_)
        origin = 170
        date = panel.prices("A").index[origin]
        target = "A" if ticker is None else ticker
        after = panel_of(
            **{
                # The target's own bars after the origin; every other ticker's from the origin's
                # own date on (the strict as-of alignment leaves same-day prices out).
                s.ticker: s.prices.where(
                    s.prices.index <= date if s.ticker == target else s.prices.index < date,
                    s.prices * 2.0,
                )
                for s in panel.series
            }
        )
        bars = panel["A"].bar_fields
        after = Panel(
            (
                replace(after.series[0], bar_fields=scaled_after(bars, date, 3.0)),
                *after.series[1:],
            )
        )
        for context in (panel, after):
            series = context[target]
            model.predict(series.prices, np.array([origin]), ticker, context=context)
        before, later = recorder.inputs
        np.testing.assert_array_equal(before.values, later.values)
        np.testing.assert_array_equal(before.future, later.future)
        # The inputs are not trivially constant: a change before the origin moves them.
        moved = panel_of(
            **{
                s.ticker: s.prices.where(s.prices.index != date, s.prices * 1.1)
                for s in panel.series
            }
        )
        moved = Panel((replace(moved.series[0], bar_fields=bars), *moved.series[1:]))
        series = moved[target]
        model.predict(series.prices, np.array([origin]), ticker, context=moved)
        assert not np.array_equal(recorder.inputs[-1].values, before.values)


def test_a_global_fit_with_covariates_touches_no_date_after_the_validation_cut():
    panel = panel_with_bars()
    perturbed = panel_of(
        **{
            s.ticker: s.prices.where(s.prices.index <= SPLIT.val_end, s.prices * 7.0)
            for s in panel.series
        }
    )
    bars = panel["A"].bar_fields
    perturbed = Panel(
        (
            replace(perturbed.series[0], bar_fields=scaled_after(bars, SPLIT.val_end, 5.0)),
            *perturbed.series[1:],
        )
    )
    weights, scalers = [], []
    for p in (panel, perturbed):
        with covariate_model() as model:
            model.fit_panel(p, SPLIT)
            weights.append(model.network_.get_weights())
            scalers.append(model.feature_scalers_)
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    for ticker in panel.tickers:
        np.testing.assert_array_equal(scalers[0][ticker].means, scalers[1][ticker].means)


def test_a_context_ending_before_the_origin_is_refused_and_export_is_refused(tmp_path):
    panel = panel_with_bars()
    with covariate_model(["volatility", "tickers"], embedding=0) as model:
        model.fit_panel(panel, SPLIT)
        short = panel_of(**{s.ticker: s.prices.iloc[:100] for s in panel.series})
        with pytest.raises(DataError, match=r"context=<the panel up to the origins>"):
            model.predict(panel.prices("B"), np.array([170]), "B", context=short)
        # A new ticker, cold: its own features scaled on its bars up to the first origin.
        new = walk(panel.prices("B").index, 11)
        forecast = model.predict(new, np.array([120, 170]), None, context=panel)
        assert np.isfinite(forecast.prices).all()
        with pytest.raises(ConfigError, match=r"model.covariates=\[\]"):
            model.export(tmp_path / "m", price_column="price", date_column="date")


@pytest.mark.slow
def test_train_on_a_panel_with_covariates_finishes_and_says_why_it_exports_no_model(tmp_path):
    from conftest import TINY, compose_config, compose_train_config
    from mlflow.tracking import MlflowClient

    from forecaster.cli.predict import predict
    from forecaster.cli.train import train

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [o for o in TINY if not o.startswith("data=")]
    metrics = train(
        compose_train_config(
            [
                *overrides,
                "data=panel",
                "data.tickers=[SP500,AAPL,EURUSD]",  # SP500 has volume and high/low, not the rest
                "window.stride=5",
                "model.covariates=[volatility,volume,range,tickers,calendar]",
                "train.baselines=[naive]",
                f"tracking.uri={uri}",
            ]
        )
    )
    assert 0.5 < metrics["panel_test_gmean_mae_vs_naive"] < 1.5
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("forecaster").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["model.exported"] == "false"
    assert "model.covariates=[]" in run.data.tags["model.not_exported_because"]
    with pytest.raises(ConfigError, match="that run logged no model to forecast with"):
        predict(compose_config("predict", [f"run_id={run.info.run_id}", f"tracking.uri={uri}"]))

"""The global seq2seq over a panel (one model, every series' windows, a ticker embedding, new
tickers cold) and scheduled sampling in the decoder."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import panel_of

from forecaster.data.panel import Panel, PanelSplit
from forecaster.data.panel_windows import make_panel_windows
from forecaster.data.splits import WindowConfig
from forecaster.errors import ConfigError
from forecaster.evaluation.backtest import BacktestConfig
from forecaster.evaluation.panel_backtest import fit_cut, walk_panel
from forecaster.models import create
from forecaster.models.seq2seq.network import Seq2SeqModel, WindowInputs
from forecaster.models.seq2seq.panel import GlobalSeq2SeqForecaster, _undo_mean
from forecaster.models.seq2seq.spec import ModelSpec, Seq2SeqConfig
from forecaster.training import TrainConfig
from forecaster.training.teacher_forcing import TeacherForcing

HORIZON = 3
WINDOW = WindowConfig(lookback=10, horizon=HORIZON, stride=2)
TRAIN = TrainConfig(epochs=2, batch_size=32, intra_op_threads=1)


def walk(dates: pd.DatetimeIndex, seed: int, drift: float = 0.0) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(
        100 * np.exp(np.cumsum(rng.normal(drift, 0.01, len(dates)))), index=dates, name="price"
    )


def sample_panel() -> Panel:
    dates = pd.bdate_range("2020-01-01", periods=240)
    return panel_of(A=walk(dates, 0, 0.001), B=walk(dates, 1), C=walk(dates[20:], 2, -0.001))


def global_model(embedding: int = 4, demean: bool = True, **train) -> GlobalSeq2SeqForecaster:
    return GlobalSeq2SeqForecaster(
        window=WINDOW,
        model=Seq2SeqConfig(num_units=6, ticker_embedding=embedding, demean=demean),
        train=replace(TRAIN, **train),
        seed=3,
    )


SPLIT = PanelSplit(pd.Timestamp("2020-06-30"), pd.Timestamp("2020-09-30"))


# -- scheduled sampling --------------------------------------------------------------------------


@pytest.fixture
def batch():
    rng = np.random.default_rng(5)
    return (
        rng.normal(size=(9, 8, 1)).astype(np.float32),
        rng.normal(size=(9, 4)).astype(np.float32),
    )


def sampling_spec(**kwargs) -> ModelSpec:
    schedule = TeacherForcing(0.5, "linear", 3)
    return ModelSpec(horizon=4, num_units=5, num_layers=2, teacher_forcing=schedule, **kwargs)


def test_ratio_one_is_teacher_forcing_and_ratio_zero_the_autoregressive_forecast(batch):
    inputs, targets = batch
    with Seq2SeqModel(sampling_spec(), seed=1) as model:
        t = model.tensors
        feed = {t.encoder_inputs: inputs, t.decoder_targets: targets}
        teacher_forced, forecast = model.session.run([t.teacher_forced, t.forecast], feed)
        forced_loss = np.mean(np.square(teacher_forced - targets), dtype=np.float32)
        loss_1, sampled_1 = model.session.run([t.loss, t.sampled], feed | {t.teacher_forcing: 1.0})
        loss_0, sampled_0, forecast_loss = model.session.run(
            [t.loss, t.sampled, t.forecast_loss], feed | {t.teacher_forcing: 0.0}
        )
    np.testing.assert_array_equal(sampled_1, teacher_forced)
    assert loss_1 == pytest.approx(forced_loss, rel=1e-6)
    np.testing.assert_array_equal(sampled_0, forecast)
    assert loss_0 == forecast_loss
    assert loss_0 != loss_1


def test_scheduled_sampling_mixes_per_row_and_step_and_is_reproducible_for_a_seed(batch):
    inputs, targets = batch

    def losses(seed: int) -> list[float]:
        with Seq2SeqModel(sampling_spec(), seed=seed) as model:
            model.steps_per_epoch = 2
            return [model.train_step(inputs, targets) for _ in range(5)]

    assert losses(7) == losses(7)
    assert losses(7) != losses(8)
    with Seq2SeqModel(sampling_spec(), seed=1) as model:
        t = model.tensors
        feed = {t.encoder_inputs: inputs, t.decoder_targets: targets, t.teacher_forcing: 0.5}
        mixed = model.session.run(t.sampled, feed)
        forced, forecast = model.session.run([t.teacher_forced, t.forecast], feed)
    # Step 0 always reads the last observed value; later steps read a mix.
    np.testing.assert_array_equal(mixed[:, 0], forced[:, 0])
    assert not np.array_equal(mixed, forced) and not np.array_equal(mixed, forecast)


def test_the_graph_schedule_follows_the_epoch_and_matches_the_reference(batch):
    inputs, targets = batch
    schedule = TeacherForcing(0.25, "inverse_sigmoid", 2.5)
    spec = ModelSpec(horizon=4, num_units=5, teacher_forcing=schedule)
    with Seq2SeqModel(spec, seed=1) as model:
        t = model.tensors
        seen = []
        for _ in range(7):
            feed = {t.steps_per_epoch: 2, t.encoder_inputs: inputs}
            seen.append(float(model.session.run(t.teacher_forcing, feed)))
            model.train_step(inputs, targets)  # advances the step counter
    expected = [schedule.ratio_at(step // 2) for step in range(7)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    assert seen[0] == pytest.approx(1.0)


def test_schedules_decay_from_one_to_the_floor():
    linear = TeacherForcing(0.3, "linear", 4)
    assert [linear.ratio_at(e) for e in (0, 2, 4, 9)] == pytest.approx([1.0, 0.65, 0.3, 0.3])
    sigmoid = TeacherForcing(0.2, "inverse_sigmoid", 5)
    ratios = [sigmoid.ratio_at(e) for e in range(60)]
    assert ratios[0] == pytest.approx(1.0) and ratios[-1] == pytest.approx(0.2, abs=1e-3)
    assert all(a > b for a, b in zip(ratios, ratios[1:], strict=False))
    assert TeacherForcing(0.7).ratio_at(12) == 0.7


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(teacher_forcing=1.5), "train.teacher_forcing=1.5 is invalid"),
        (dict(teacher_forcing_decay="cosine"), "train.teacher_forcing_decay='cosine'"),
        (
            dict(teacher_forcing_decay="inverse_sigmoid", teacher_forcing_epochs=0.5),
            "train.teacher_forcing_epochs=0.5 is invalid",
        ),
    ],
)
def test_bad_teacher_forcing_settings_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        TrainConfig(**kwargs)


def test_default_training_builds_the_teacher_forced_graph_of_before():
    spec = ModelSpec.of(5, Seq2SeqConfig(), TrainConfig())
    assert spec.teacher_forcing.always and not spec.ticker_embedding
    with Seq2SeqModel(spec) as model:
        t = model.tensors
        assert t.sampled is None and t.ticker_ids is None
        names = {op.name for op in model.graph.get_operations()}
    assert not any("ticker" in n or "teacher_forcing" in n for n in names)


# -- the ticker embedding ------------------------------------------------------------------------


def test_a_new_ticker_gets_the_mean_of_the_trained_tickers_vectors(batch):
    inputs, _ = batch
    spec = ModelSpec(horizon=4, num_units=5, ticker_embedding=3, num_tickers=4)
    with Seq2SeqModel(spec, seed=2) as model:
        ids = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0], np.int32)
        known = model.forecast(WindowInputs(inputs, ids)).forecast
        new = model.forecast(WindowInputs(inputs, np.full(9, -1, np.int32))).forecast
        assert not np.allclose(known, new)
        weights = model.get_weights()
        table = weights["ticker_embedding/table"]
        model.set_weights(weights | {"ticker_embedding/table": np.tile(table.mean(0), (4, 1))})
        np.testing.assert_allclose(
            model.forecast(WindowInputs(inputs, ids)).forecast, new, rtol=1e-6, atol=1e-7
        )


def test_an_embedding_without_tickers_is_refused():
    with pytest.raises(ConfigError, match="model.ticker_embedding needs the tickers"):
        ModelSpec(horizon=3, ticker_embedding=4)


# -- the global model ----------------------------------------------------------------------------


def test_one_model_trains_on_every_series_and_forecasts_trained_and_new_tickers():
    panel = sample_panel()
    with global_model() as model:
        model.fit_panel(panel, SPLIT)
        assert model.tickers_ == ("A", "B", "C")
        assert model.network_.spec.num_tickers == 3
        # Each series' scaler is its own, fitted on its training dates only.
        for ticker in panel.tickers:
            train = panel.prices(ticker).loc[: SPLIT.train_end].to_numpy()
            returns = np.log(train[1:] / train[:-1])
            assert model.scalers_[ticker].mean == pytest.approx(returns.mean(), rel=1e-12)
        prices = panel.prices("B")
        origins = np.array([150, 200])
        trained = model.predict(prices, origins, "B")
        assert trained.prices.shape == (2, HORIZON) and np.isfinite(trained.prices).all()
        # A new ticker: cold, scaled on its own prices up to the first origin, mean embedding.
        new_prices = walk(pd.bdate_range("2021-01-01", periods=80), 9)
        new = model.predict(new_prices, np.array([40, 79]), "NEW")
        assert new.prices.shape == (2, HORIZON) and np.isfinite(new.prices).all()
        assert not model.knows("NEW")
        # Later prices of the new series do not move its forecast at the first origin.
        garbage = new_prices.copy()
        garbage.iloc[41:] *= 3.0
        np.testing.assert_array_equal(
            model.predict(garbage, np.array([40]), None).prices,
            model.predict(new_prices, np.array([40]), None).prices,
        )
        view = model.for_series("B")
        np.testing.assert_array_equal(view.predict(prices, origins).prices, trained.prices)


@pytest.mark.parametrize("embedding", [0, 4])
def test_a_global_fit_touches_no_date_after_the_validation_cut(embedding):
    """Every series' prices after the split's val_end replaced: the same weights bit for bit."""
    panel = sample_panel()
    perturbed = panel_of(
        **{
            s.ticker: s.prices.where(s.prices.index <= SPLIT.val_end, s.prices * 7.0)
            for s in panel.series
        }
    )
    weights, histories = [], []
    for p in (panel, perturbed):
        with global_model(embedding) as model:
            model.fit_panel(p, SPLIT)
            weights.append(model.network_.get_weights())
            histories.append(model.history_)
            scalers = model.scalers_
    # Every epoch's losses, training and validation, and the chosen weights: the same.
    assert histories[0].train_loss == histories[1].train_loss
    assert histories[0].val_loss == histories[1].val_loss
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    assert scalers == model.scalers_


def test_validation_dates_do_not_reach_any_series_training_windows():
    """Prices dated after train_end change only the validation loss, never a training step."""
    panel = sample_panel()
    perturbed = panel_of(
        **{
            s.ticker: s.prices.where(s.prices.index <= SPLIT.train_end, s.prices * 1.3)
            for s in panel.series
        }
    )
    histories = []
    for p in (panel, perturbed):
        with global_model() as model:
            histories.append(model.fit_panel(p, SPLIT).history_)
    assert histories[0].train_loss == histories[1].train_loss
    assert histories[0].val_loss != histories[1].val_loss


def test_the_panel_backtest_fits_a_global_model_once_per_fold_on_every_series():
    panel = sample_panel()
    fits = []

    class Spy(GlobalSeq2SeqForecaster):
        def fit_panel(self, panel, split):
            last = max(s.prices.index[-1] for s in panel.series)
            fits.append((tuple(panel.tickers), split, last))
            return super().fit_panel(panel, split)

    config = BacktestConfig(models=["naive", "drift"], test_fraction=0.2, refit_every=20)
    models = {n: (lambda n=n: create(n, horizon=HORIZON)) for n in config.models}
    factory = lambda: Spy(  # noqa: E731
        window=WINDOW, model=Seq2SeqConfig(num_units=6, ticker_embedding=2), train=TRAIN, seed=3
    )
    result = walk_panel(panel, models, config, HORIZON, panel_models={"seq2seq": factory})
    folds = max(len(r.folds) for r in result.results.values())
    assert len(fits) == folds > 1
    for k, (tickers, split, last_date) in enumerate(fits):
        assert tickers == ("A", "B", "C")
        # Fold k's fit sees nothing dated after any series' first origin of fold k.
        firsts = [r.prices.index[r.folds[k].origins[0]] for r in result.results.values()]
        assert last_date == split.val_end == min(firsts)
    for r in result.results.values():
        assert list(r.forecasts)[0] == "seq2seq"
        assert r.forecasts["seq2seq"].shape == r.forecasts["naive"].shape
        assert np.isfinite(r.forecasts["seq2seq"]).all() and r.seconds["seq2seq"] > 0


def test_a_fit_cut_leaves_out_series_too_short_to_train_on():
    dates = pd.bdate_range("2020-01-01", periods=240)
    panel = panel_of(A=walk(dates, 0), LATE=walk(dates[150:], 1))
    cut = dates[170]
    fitted, split, left_out = fit_cut(panel, cut, BacktestConfig(), 10, HORIZON, "log_return")
    assert fitted.tickers == ["A"] and left_out == ["LATE"]
    assert fitted.prices("A").index[-1] == dates[170] == split.val_end


def test_without_demeaning_each_series_is_scaled_by_its_training_std_only():
    panel = sample_panel()
    with global_model(demean=False) as model:
        model.fit_panel(panel, SPLIT)
        for ticker in panel.tickers:
            train = panel.prices(ticker).loc[: SPLIT.train_end].to_numpy()
            returns = np.log(train[1:] / train[:-1])
            assert model.scalers_[ticker].mean == 0.0
            assert model.scalers_[ticker].std == pytest.approx(returns.std(), rel=1e-12)
        dataset = make_panel_windows(panel, SPLIT, lookback=10, horizon=HORIZON, stride=2)
        windows = _undo_mean(dataset.part("train"), dataset)
        first = windows.ticker_index == 1
        raw = windows.inputs[first][0, :, 0] * model.scalers_["B"].std
        prices = panel.prices("B").to_numpy()
        origin = windows.origin_index[first][0]
        np.testing.assert_allclose(
            raw, np.diff(np.log(prices[origin - 10 : origin + 1])), atol=1e-6
        )


@pytest.mark.parametrize("command", ["train", "backtest"])
def test_a_panel_brings_the_global_models_measured_defaults_and_one_series_does_not(command):
    from conftest import compose_config

    panel = compose_config(command, ["data=panel"])
    assert (panel.model.ticker_embedding, panel.model.demean, panel.model.shrinkage) == (
        8,
        True,
        "per_series",
    )
    assert panel.window.stride == 5 and panel.train.epochs == 10
    single = compose_config(command, ["data=sp500"])
    assert (single.model.ticker_embedding, single.model.demean, single.model.shrinkage) == (
        0,
        True,
        "none",
    )
    assert single.window.stride == 1 and single.train.epochs == 30
    # The command line still wins over the panel's defaults.
    assert not compose_config(command, ["data=panel", "model.demean=false"]).model.demean


def test_a_single_series_model_refuses_the_global_models_keys():
    for key, value in (("ticker_embedding", 4), ("shrinkage", "global"), ("demean", False)):
        with pytest.raises(ConfigError, match="settings of the global model over a panel"):
            create("seq2seq", model=Seq2SeqConfig(**{key: value}))

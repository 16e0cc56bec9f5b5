"""`python -m forecaster predict`: forecast the next prices with a logged model.

Which model: `run_id=<id>` or `run_id=latest`, `sweep=<parent run id or name> pick=best`, or
`model_uri=models:/<name>@champion`; the output says which run that picked.
Cold start (default): encode the last `lookback` bars from a zero state, as in training.
A global model (`train data=panel`) forecasts every series of a panel given as `data` (e.g.
`data=panel`), or one file's series as `ticker` (default: the file's stem); a ticker it was not
trained on is forecast cold from its own prices.
Warm start (`warm_start=true`): take the encoder state the run logged for its last window
and carry it over every bar since, then forecast.
An output file is never replaced unless `overwrite=true`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from forecaster.cli import config
from forecaster.errors import ConfigError, DataError, ForecasterError

if TYPE_CHECKING:
    import pandas as pd

    from forecaster.serving import PriceForecast

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> pd.DataFrame:
    # MLflow and TensorFlow load here, not at import: `--help` and `--cfg job` need neither.
    from forecaster import tracking
    from forecaster.data import load_prices
    from forecaster.tracking.registry import pick_model
    from forecaster.tracking.resume import check_run_id

    config.check_known_keys(cfg, config.PredictAppConf)
    is_panel = cfg.data.paths is not None or cfg.data.ticker_column is not None
    if cfg.run_id:
        check_run_id(str(cfg.run_id))
    # Checked before the work, so an unwritable path costs nothing.
    _check_writable(Path(cfg.output) if cfg.output else Path("predictions") / "x.csv")
    tracking.connect(cfg.tracking.uri)
    picked = pick_model(
        cfg.tracking.experiment_name,
        run_id=cfg.run_id,
        sweep=cfg.sweep,
        pick=cfg.pick,
        model_uri=cfg.model_uri,
    )
    print(f"model: {picked.reason}")
    model = tracking.load_model(picked.model_uri)
    trained = model.preprocessing
    if trained.tickers is None and (is_panel or cfg.ticker):
        raise ConfigError(
            "this model was trained on one series: give it one price file (data.path, e.g. "
            "data=sp500) and no ticker; a model over many tickers comes from "
            "`python -m forecaster train data=panel`."
        )
    if is_panel:
        if cfg.warm_start:
            raise ConfigError("warm_start=true is for single-series models; drop it for a panel")
        return _predict_panel(cfg, model, picked.run_id)
    # A single-series model reads the column it was trained on; a global one, the file's own.
    default_column = trained.price_column if trained.tickers is None else None
    series = load_prices(
        cfg.data.path, cfg.data.date_column, cfg.data.price_column or default_column
    )
    prices = series.prices
    ticker = (cfg.ticker or series.path.stem) if trained.tickers is not None else None
    last_date = prices.index[-1]
    daily = bool((prices.index == prices.index.normalize()).all())
    stamp = "%Y-%m-%d" if daily else "%Y-%m-%dT%H:%M:%S"  # intraday bars keep their time
    start = "warm" if cfg.warm_start else "cold"
    name = f"{picked.run_id}_{last_date.strftime(stamp).replace(':', '')}_{start}.csv"
    output = Path(cfg.output or Path("predictions") / name)
    _check_new(output, cfg.overwrite)  # before the work, so a refusal costs nothing
    if cfg.warm_start:
        forecast, how = _warm_start(picked.run_id, model, prices)
    else:
        forecast = model.forecast(prices, ticker)
        how = f"cold start on the last {trained.lookback} bars"
        if ticker is not None:
            known = ticker in trained.tickers
            how += (
                f", ticker {ticker!r} ({'trained' if known else 'new: scaled on its own prices'})"
            )
    frame = forecast.to_frame()
    output.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(output, index=False, date_format=stamp)
    print(
        f"{series.path.name} {series.price_column}: {prices.iloc[-1]:.4f} on "
        f"{last_date.strftime(stamp)} ({how})\n{frame.to_string(index=False)}\n"
        f"written to {output.resolve()}"
    )
    return frame


def _check_new(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise ConfigError(
            f"{output} already exists; predict never replaces an output silently. Fix: name "
            "another file with output=<path>.csv, or replace it with overwrite=true."
        )


def _predict_panel(cfg: DictConfig, model, run_id: str) -> pd.DataFrame:
    """Every series of the panel in `data`, each by its ticker (new tickers cold)."""
    import pandas as pd

    from forecaster.data.panel import load_panel

    data, trained = cfg.data, model.preprocessing
    panel = load_panel(
        list(data.paths) if data.paths is not None else [data.path],
        date_column=data.date_column,
        price_column=data.price_column,
        ticker_column=data.ticker_column,
        tickers=None if data.tickers is None else list(data.tickers),
    )
    frames = []
    for series in panel.series:
        frame = model.forecast(series.prices, series.ticker).to_frame()
        frame.insert(0, "ticker", series.ticker)
        frame.insert(1, "trained", series.ticker in trained.tickers)
        frame.insert(2, "last_price", float(series.prices.iloc[-1]))
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    last_date = panel.calendar[-1]
    output = Path(cfg.output or f"predictions/{run_id}_{last_date:%Y-%m-%d}_cold.csv")
    _check_new(output, cfg.overwrite)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False, date_format="%Y-%m-%d")
    new = [t for t in panel.tickers if t not in trained.tickers]
    print(
        f"{len(panel)} series, cold start on each one's last {trained.lookback} bars"
        + (f"; new tickers (scaled on their own prices): {', '.join(new)}" if new else "")
        + f"\n{table.to_string(index=False)}\nwritten to {output.resolve()}"
    )
    return table


def _check_writable(output: Path) -> None:
    key = f"output={output}" if output.name != "x.csv" else f"the default output {output.parent}/"
    if output.is_dir():
        raise ConfigError(f"{key} is a directory. Fix: name a CSV file, e.g. output={output}/f.csv")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(
            f"{key}: cannot create the directory {output.parent} ({error.strerror}). Fix: "
            "choose a location you can write to with output=<path>.csv."
        ) from None
    writable = os.access(output, os.W_OK) if output.exists() else os.access(output.parent, os.W_OK)
    if not writable:
        raise ConfigError(
            f"{key}: {output if output.exists() else output.parent} is not writable. Fix: "
            "choose a location you can write to with output=<path>.csv."
        )


def _warm_start(run_id: str, model, prices: pd.Series) -> tuple[PriceForecast, str]:
    import numpy as np

    from forecaster import tracking
    from forecaster.serving import OnlineForecaster

    state, _ = tracking.load_final_states(run_id)
    origin = state.last_date
    if origin not in prices.index:
        raise DataError(
            f"warm start: the run's state is for the bar of {origin:%Y-%m-%d}, which is not in "
            f"the data ({prices.index[0]:%Y-%m-%d} to {prices.index[-1]:%Y-%m-%d}); use a file "
            f"that continues the training series, or drop warm_start=true"
        )
    if not np.isclose(prices[origin], state.last_price, rtol=1e-6):
        raise DataError(
            f"warm start: on {origin:%Y-%m-%d} the data has price {prices[origin]:.6f} but the "
            f"run saw {state.last_price:.6f}: this is not the series the model was trained on"
        )
    new_bars = prices[prices.index > origin]
    if new_bars.empty:
        raise DataError(
            f"warm start: no bars after {origin:%Y-%m-%d} to carry the state over; the data "
            f"ends there"
        )
    forecast = OnlineForecaster(model, state).update(new_bars)
    return forecast, f"warm start from {origin:%Y-%m-%d}, carried over {len(new_bars)} bars"


@hydra.main(config_path=config.CONFIG_PATH, config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        predict(cfg)
    except ForecasterError as error:
        log.error("%s", error)
        raise SystemExit(1) from None


config.register()

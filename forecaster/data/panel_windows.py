"""Windows of a panel for one model over many tickers, and cross-ticker inputs without look-ahead.

`make_panel_windows` cuts every series at the panel's one calendar cut (`PanelSplit`) and makes
its windows exactly as for a single series (`make_windows`: the scaler fitted on that series'
training part only). The windows of all series are then stacked, each carrying the index of its
ticker in `PanelDataset.tickers`, the vocabulary of a per-ticker embedding.

Other tickers' moves are aligned to a series by date (`aligned_log_returns`): at each of the
series' dates, every other ticker contributes its log return between its last prices dated
before consecutive dates (as-of, never a later price). By default "before" is strict: a price
dated the same day is left out, because the date alone does not say whether it was known at the
series' own bar (an ECB reference rate is fixed at 14:15 CET, hours before a US close dated the
same day). `same_date=True` admits same-day prices for panels whose markets close together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecaster.data.panel import Panel, PanelSplit
from forecaster.data.windows import Dataset, Scaler, WindowSet, make_windows, target_series
from forecaster.errors import DataError

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class PanelWindowSet(WindowSet):
    """The windows of one part of every series, stacked, with each window's ticker."""

    ticker_index: np.ndarray  # [n] int32: position of the window's ticker in the tickers


@dataclass(frozen=True)
class PanelDataset:
    """Every series of a panel, cut at one calendar split into scaled windows."""

    tickers: tuple[str, ...]  # a window's ticker_index indexes this
    split: PanelSplit
    datasets: dict[str, Dataset]  # per ticker: its prices, TimeSplit, scaler and windows

    @property
    def scalers(self) -> dict[str, Scaler]:
        return {ticker: dataset.scaler for ticker, dataset in self.datasets.items()}

    def part(self, name: str) -> PanelWindowSet:
        """The `name` ("train", "val" or "test") windows of every ticker, stacked in ticker
        order (a copy: stacking cannot keep the per-series views)."""
        if name not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {name!r}")
        sets = [getattr(self.datasets[t], name) for t in self.tickers]
        return PanelWindowSet(
            inputs=np.concatenate([s.inputs for s in sets]),
            targets=np.concatenate([s.targets for s in sets]),
            origin_index=np.concatenate([s.origin_index for s in sets]),
            origin_prices=np.concatenate([s.origin_prices for s in sets]),
            actual_prices=np.concatenate([s.actual_prices for s in sets]),
            origin_dates=pd.DatetimeIndex(np.concatenate([s.origin_dates for s in sets])),
            ticker_index=np.concatenate(
                [np.full(len(s), k, dtype=np.int32) for k, s in enumerate(sets)]
            ),
        )


def make_panel_windows(
    panel: Panel,
    split: PanelSplit,
    *,
    lookback: int,
    horizon: int,
    stride: int = 1,
    target: str = "log_return",
) -> PanelDataset:
    """Cut every series of `panel` at `split` and make its windows (`make_windows`)."""
    datasets = {
        s.ticker: make_windows(
            s.prices,
            split.of(s.prices),
            lookback=lookback,
            horizon=horizon,
            stride=stride,
            target=target,
        )
        for s in panel.series
    }
    return PanelDataset(tuple(panel.tickers), split, datasets)


def aligned_log_returns(
    panel: Panel, dates: pd.DatetimeIndex, *, same_date: bool = False
) -> pd.DataFrame:
    """``[len(dates), tickers]``: row ``k`` holds each ticker's log return from its last price
    dated before ``dates[k-1]`` to its last price dated before ``dates[k]`` ("before" includes
    the same date when `same_date`). NaN in the first row and until a ticker has two prices;
    0 where a ticker had no new price in between (its market was closed)."""
    columns = {}
    for s in panel.series:
        log_prices = np.log(s.prices.to_numpy(dtype=np.float64))
        last = s.prices.index.searchsorted(dates, side="right" if same_date else "left") - 1
        as_of = np.where(last >= 0, log_prices[np.maximum(last, 0)], np.nan)
        columns[s.ticker] = np.diff(as_of, prepend=np.nan)
    return pd.DataFrame(columns, index=dates)


@dataclass(frozen=True)
class CrossTickerInputs:
    """Every ticker's aligned, standardised log returns on each series' own dates, cut into the
    windows of a `PanelWindowSet` on demand (a batch at a time: all windows of a large panel at
    once would take ``n * lookback * tickers`` floats)."""

    tickers: tuple[str, ...]  # the columns, and what a window's ticker_index indexes
    lookback: int
    values: np.ndarray  # [bars of every series, one after another, len(tickers)] float32
    offsets: np.ndarray  # [len(tickers)]: where each series' bars start in `values`

    def windows(
        self, windows: PanelWindowSet, rows: np.ndarray | slice = slice(None)
    ) -> np.ndarray:
        """``[n, lookback, tickers]`` float32 for `windows`' `rows`: at each input bar of a
        window, every ticker's aligned return, 0 where it has none."""
        last = self.offsets[windows.ticker_index[rows]] + windows.origin_index[rows]
        return self.values[last[:, np.newaxis] + np.arange(1 - self.lookback, 1)]


@dataclass(frozen=True)
class ReturnScalers:
    """Each ticker's log-return scaler, fitted on its bars up to a split's `train_end`: what
    standardises the other tickers' returns a series reads (`scaled_aligned_returns`)."""

    tickers: tuple[str, ...]
    means: np.ndarray  # [tickers]
    stds: np.ndarray  # [tickers]

    @classmethod
    def fit(cls, panel: Panel, train_end: pd.Timestamp) -> ReturnScalers:
        scalers = [
            Scaler.fit(target_series(s.prices.loc[:train_end], "log_return").to_numpy())
            for s in panel.series
        ]
        return cls(
            tuple(panel.tickers),
            np.array([scaler.mean for scaler in scalers]),
            np.array([scaler.std for scaler in scalers]),
        )


def scaled_aligned_returns(
    panel: Panel, dates: pd.DatetimeIndex, scalers: ReturnScalers, *, same_date: bool = False
) -> np.ndarray:
    """``[len(dates), tickers]`` float32: `aligned_log_returns` of `scalers`' tickers (taken
    from `panel`, in that order) standardised by `scalers`, 0 where there is no value."""
    missing = [t for t in scalers.tickers if t not in panel.tickers]
    if missing:
        raise DataError(
            f"the panel lacks tickers {missing} whose returns the model reads "
            "(model.covariates=[tickers]). Fix: pass the panel the model was trained on."
        )
    aligned = aligned_log_returns(panel.select(list(scalers.tickers)), dates, same_date=same_date)
    standardised = (aligned.to_numpy() - scalers.means) / scalers.stds
    return np.nan_to_num(standardised, nan=0.0).astype(np.float32)


def align_tickers(
    panel: Panel, dataset: PanelDataset, *, same_date: bool = False
) -> CrossTickerInputs:
    """Every ticker's log returns aligned to every series' dates (`aligned_log_returns`),
    standardised by that ticker's own log returns up to the split's `train_end` (so no scaler
    sees a later date either), 0 where there is no value."""
    if tuple(panel.tickers) != dataset.tickers:
        raise ValueError(
            f"the dataset's tickers {dataset.tickers} are not the panel's {panel.tickers}: "
            "align the panel the dataset was made from"
        )
    scalers = ReturnScalers.fit(panel, dataset.split.train_end)
    blocks = [
        scaled_aligned_returns(
            panel, dataset.datasets[t].prices.index, scalers, same_date=same_date
        )
        for t in dataset.tickers
    ]
    offsets = np.cumsum([0] + [len(block) for block in blocks[:-1]])
    lookback = dataset.datasets[dataset.tickers[0]].lookback
    return CrossTickerInputs(dataset.tickers, lookback, np.concatenate(blocks), offsets)

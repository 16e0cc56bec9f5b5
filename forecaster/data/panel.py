"""A panel: many price series (tickers) loaded and checked together, and split by one calendar.

Two layouts are read (`load_panel`):

- several price files, one series each, named by the file's stem (``AAPL.csv`` is ``AAPL``),
  given as paths or glob patterns; each file is read by `load_prices`, so every rule of a
  single series applies;
- long-format files (``date,ticker,price`` and optionally ``open,high,low,volume``), one row per
  date and ticker, read by `load_long_prices` when a ticker column is named.

Either way each series is validated on its own and every error names the file, the ticker, the
column and the line. The bar fields (`forecaster.data.io.BAR_FIELDS`) are kept where a file has
them.

A panel is split by date (`panel_split`): one cut for every series, so no series' validation or
test dates can reach another series' training windows, and a model fitted on all series'
training windows has seen nothing dated after the cut. Per series the cut becomes an ordinary
`TimeSplit`, so scaling and windows are those of a single series (`forecaster.data.windows`),
fitted on that series' training part only.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.data.io import PriceSeries, load_long_prices, load_prices, prices_from_frame
from forecaster.data.splits import TimeSplit, WindowConfig, _window_counts, target_offset
from forecaster.errors import ConfigError, DataError

_GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True, eq=False)  # eq=False: comparing the series' pd.Series would raise
class Panel:
    """Validated price series, one per ticker, in load order (or the order asked for)."""

    series: tuple[PriceSeries, ...]

    @property
    def tickers(self) -> list[str]:
        return [s.ticker for s in self.series]

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, ticker: str) -> PriceSeries:
        for s in self.series:
            if s.ticker == ticker:
                return s
        raise KeyError(f"no ticker {ticker!r} in this panel; tickers: {self.tickers}")

    def prices(self, ticker: str) -> pd.Series:
        return self[ticker].prices

    @property
    def calendar(self) -> pd.DatetimeIndex:
        """Every date on which at least one series has a bar, ascending."""
        index = self.series[0].prices.index
        for s in self.series[1:]:
            index = index.union(s.prices.index)
        return index

    def sources(self) -> pd.DataFrame:
        """One row per ticker: where it came from and what it holds (for provenance)."""
        return pd.DataFrame(
            [
                {
                    "ticker": s.ticker,
                    "file": str(s.path),
                    "sha256": s.sha256,
                    "price_column": s.price_column,
                    "rows": len(s.prices),
                    "first_date": f"{s.prices.index[0]:%Y-%m-%d}",
                    "last_date": f"{s.prices.index[-1]:%Y-%m-%d}",
                    "dropped_rows": s.dropped_rows,
                    "bar_fields": " ".join([] if s.bar_fields is None else s.bar_fields.columns),
                }
                for s in self.series
            ]
        )

    def select(self, tickers: Sequence[str]) -> Panel:
        """The panel of `tickers` only, in that order."""
        unknown = [t for t in tickers if t not in self.tickers]
        if unknown or not tickers:
            raise DataError(
                f"data.tickers={list(tickers)!r}: {unknown or 'no ticker'} not in the panel; its "
                f"tickers are {self.tickers}. Fix: name some of those in data.tickers, or "
                "data.tickers=null for all."
            )
        if len(set(tickers)) != len(tickers):
            raise DataError(f"data.tickers={list(tickers)!r} names a ticker twice.")
        return Panel(tuple(self[t] for t in tickers))


def expand_paths(entries: Sequence[str | Path]) -> list[Path]:
    """Paths and glob patterns (``prices/*.csv``, ``~`` expanded, relative to the working
    directory) as the files they name: each pattern's matches sorted, each file once."""
    files: list[Path] = []
    for entry in entries:
        text = os.path.expanduser(str(entry))
        if _GLOB_CHARACTERS & set(text):
            matches = sorted(Path(m).resolve() for m in glob.glob(text) if Path(m).is_file())
            if not matches:
                raise DataError(
                    f"data.paths entry {str(entry)!r} matches no file (relative patterns are "
                    f"read from {Path.cwd()}). Fix: correct the pattern, e.g. "
                    "data.paths=[prices/*.csv]."
                )
            files += matches
        else:
            files.append(Path(text).resolve())
    repeated = sorted({str(f) for f in files if files.count(f) > 1})
    if repeated:
        raise DataError(
            f"data.paths names {repeated} more than once (patterns may overlap). Fix: list "
            "each file once."
        )
    return files


def load_panel(
    paths: Sequence[str | Path],
    *,
    date_column: str = "Date",
    price_column: str | None = None,
    ticker_column: str | None = None,
    tickers: Sequence[str] | None = None,
) -> Panel:
    """Load every series of `paths` (files or glob patterns) as one panel.

    Without `ticker_column` each file is one series named by its stem; with it every file is in
    long format and names its series in that column. `tickers` keeps only those, in that order.
    """
    if not paths:
        raise ConfigError("data.paths is empty: give at least one price file or pattern.")
    series: list[PriceSeries] = []
    for path in expand_paths(paths):
        if ticker_column is None:
            series.append(
                load_prices(path, date_column, price_column, ticker=path.stem, bar_fields=True)
            )
        else:
            series += load_long_prices(
                path,
                ticker_column=ticker_column,
                date_column=date_column,
                price_column=price_column,
                bar_fields=True,
            )
    seen: dict[str, Path] = {}
    for s in series:
        if s.ticker in seen:
            how = (
                "rename one of the files"
                if ticker_column is None
                else "give each series its own ticker, or load one of the files only"
            )
            raise DataError(
                f"ticker {s.ticker!r} is in both {seen[s.ticker]} and {s.path}; a ticker names "
                f"one series. Fix: {how}."
            )
        seen[s.ticker] = s.path
    panel = Panel(tuple(series))
    return panel if tickers is None else panel.select(list(tickers))


def panel_from_frame(
    frame: pd.DataFrame,
    *,
    date_column: str = "date",
    price_column: str = "price",
    ticker_column: str = "ticker",
) -> Panel:
    """A panel from a DataFrame in memory, in either layout: long (`ticker_column`,
    `date_column` and `price_column` columns, one row per date and ticker) or wide (a
    DatetimeIndex of dates, one column of prices per ticker, NaN where a ticker has no bar).
    Each series is checked by the rules of a price file (`prices_from_frame`)."""
    if ticker_column in frame.columns:
        long = frame
    elif isinstance(frame.index, pd.DatetimeIndex):
        long = (
            frame.rename_axis(index=date_column, columns=ticker_column)
            .stack(future_stack=True)
            .dropna()
            .rename(price_column)
            .reset_index()
        )
    else:
        raise DataError(
            f"a panel frame is long (columns {ticker_column!r}, {date_column!r}, "
            f"{price_column!r}) or wide (a DatetimeIndex, one price column per ticker); this one "
            f"has columns {list(frame.columns)[:8]} on a {type(frame.index).__name__}. Fix: "
            "set the dates as the index (frame.set_index('date')) or add a ticker column."
        )
    missing = [c for c in (date_column, price_column) if c not in long.columns]
    if missing:
        raise DataError(
            f"the long panel frame has no {missing} column(s); columns: {list(long.columns)}. "
            f"Fix: name them {date_column!r} and {price_column!r}, or pass date_column=... and "
            "price_column=..."
        )
    series = []
    for ticker, rows in long.groupby(ticker_column, sort=False):
        prices = prices_from_frame(
            rows.reset_index(drop=True),
            date_column=date_column,
            price_column=price_column,
            source=f"ticker {ticker!r}",
        )
        digest = hashlib.sha256(pd.util.hash_pandas_object(prices).to_numpy().tobytes())
        series.append(
            PriceSeries(
                prices=prices.astype(np.float64),
                path=Path("<DataFrame>"),  # in memory: no file
                date_column=date_column,
                price_column=price_column,
                sha256=digest.hexdigest(),
                dropped_rows=0,
                ticker=str(ticker),
            )
        )
    if not series:
        raise DataError("the panel frame holds no prices. Fix: pass at least one ticker's prices.")
    return Panel(tuple(series))


@dataclass(frozen=True)
class PanelSplit:
    """One calendar cut for every series of a panel: training is every bar dated on or before
    `train_end`, validation every bar after it up to `val_end`, test every bar after that."""

    train_end: pd.Timestamp
    val_end: pd.Timestamp

    def of(self, prices: pd.Series) -> TimeSplit:
        """The cut as positions in one series."""
        dates = prices.index
        train_stop = int(dates.searchsorted(self.train_end, side="right"))
        val_stop = int(dates.searchsorted(self.val_end, side="right"))
        return TimeSplit.at(prices, train_stop, val_stop)


def panel_split(
    panel: Panel,
    window: WindowConfig,
    target: str = "log_return",
    *,
    train_end: str | pd.Timestamp | None = None,
    val_end: str | pd.Timestamp | None = None,
) -> PanelSplit:
    """Cut `panel` at two dates: given, or where `window`'s fractions fall in the panel's
    calendar (the union of every series' dates). Raise `DataError` naming the ticker when a
    series gets no window in some part."""
    if (train_end is None) != (val_end is None):
        raise ConfigError("give both train_end and val_end, or neither (to use the fractions).")
    if train_end is None:
        calendar = panel.calendar
        n = len(calendar)
        train_stop = round(n * (1 - window.val_fraction - window.test_fraction))
        val_stop = round(n * (1 - window.test_fraction))
        if not 0 < train_stop < val_stop < n:
            raise DataError(
                f"the panel's calendar has {n} dates: too few to split by "
                f"window.val_fraction={window.val_fraction} and "
                f"window.test_fraction={window.test_fraction}."
            )
        split = PanelSplit(calendar[train_stop - 1], calendar[val_stop - 1])
    else:
        split = PanelSplit(pd.Timestamp(train_end), pd.Timestamp(val_end))
        if not split.train_end < split.val_end:
            raise ConfigError(
                f"train_end {split.train_end:%Y-%m-%d} must come before val_end "
                f"{split.val_end:%Y-%m-%d}."
            )
    offset = target_offset(target)
    for s in panel.series:
        dates = s.prices.index
        train_stop = int(dates.searchsorted(split.train_end, side="right"))
        val_stop = int(dates.searchsorted(split.val_end, side="right"))
        n = len(dates) - offset
        counts = _window_counts(
            n, window.lookback, window.horizon, train_stop - offset, val_stop - offset
        )
        if min(counts) <= 0:
            raise DataError(
                f"ticker {s.ticker!r} ({s.path}): the panel's cut (training to "
                f"{split.train_end:%Y-%m-%d}, validation to {split.val_end:%Y-%m-%d}) leaves it "
                f"{train_stop} training, {val_stop - train_stop} validation and "
                f"{len(dates) - val_stop} test bars ({dates[0]:%Y-%m-%d} to "
                f"{dates[-1]:%Y-%m-%d}), and windows of window.lookback={window.lookback} and "
                f"window.horizon={window.horizon} need at least "
                f"{window.lookback + window.horizon + offset}, {window.horizon} and "
                f"{window.horizon}. Fix: leave it out with data.tickers=[...], or move the cut."
            )
    return split

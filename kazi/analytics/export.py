"""The analysts' tables as CSV (spreadsheets) and Parquet (pandas, R, DuckDB, Power BI), from typed columns.

Parquet keeps the column types (integers stay integers, an empty cell stays null rather than becoming an empty
string), which is why analysts prefer it for anything they compute on; CSV is what opens everywhere. Both are
built from the same :class:`~kazi.analytics.metrics.Column` list, so the two files always agree, except that a
CSV cell a spreadsheet would run as a formula starts with ``'`` (:mod:`kazi.csvcells`); Parquet is not read
as formulas and keeps every value exactly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pyarrow as pa  # type: ignore[import-untyped]  # no stubs are published
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from kazi import csvcells
from kazi.analytics.metrics import Column

MEDIA_TYPES: Final = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
_ARROW_TYPES: Final = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}


def to_csv(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """UTF-8 CSV with a header row; ``None`` is an empty cell; text a spreadsheet would run as a formula is
    neutralised (:mod:`kazi.csvcells`: a leading ``'``; numbers stay numbers)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(csvcells.row(c.name for c in columns))
    for row in rows:
        writer.writerow(csvcells.row("" if row.get(c.name) is None else row[c.name] for c in columns))
    return out.getvalue().encode("utf-8")


def to_parquet(columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A Parquet file with one typed, nullable column per :class:`Column` (its description as field metadata)."""
    materialized = list(rows)
    schema = pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind], nullable=True,
                                 metadata={"description": c.description}) for c in columns])
    table = pa.table({c.name: pa.array([r.get(c.name) for r in materialized], type=_ARROW_TYPES[c.kind])
                      for c in columns}, schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def encode(fmt: str, columns: Sequence[Column], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """``csv`` or ``parquet`` bytes of a table."""
    if fmt == "csv":
        return to_csv(columns, rows)
    if fmt == "parquet":
        return to_parquet(columns, rows)
    raise ValueError(f"unknown export format {fmt!r}: use csv or parquet")

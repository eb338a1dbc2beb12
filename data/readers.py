"""Raw readers: CSV, Parquet, SQL and DataFrames as bounded batches of untyped rows.

Event logs can be far larger than memory allows as Python objects, so every
source is read in bounded batches (pyarrow's streaming CSV reader, Parquet row
batches, SQL chunks).  Input problems raise a clear error naming the file:
:class:`FileNotFoundError` for a missing file, :class:`ValueError` for missing
columns or an unreadable format.  Lines that never become rows (wrong field
count, bad bytes) travel with their batch for quarantine.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from data.csv_bytes import MAX_LINE_BYTES, BadLine, CleanLines
from data.quarantine import bad_lines, malformed_lines

#: Rows per streamed batch: large enough that per-batch overhead vanishes, small
#: enough that one batch's temporaries stay in the tens of megabytes.
DEFAULT_BATCH_ROWS = 250_000

#: Source formats :func:`iter_raw` reads (``auto``: by type, suffix, magic bytes or URL).
RAW_FORMATS = ("auto", "csv", "parquet", "sql", "frame")

#: CSV cells read as missing.
CSV_NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]

Source = str | Path | pd.DataFrame | Any  # Any: a SQLAlchemy Engine or Connection


@dataclass
class RawBatch:
    """One batch as read (cells untyped) with the lines that never became rows."""

    frame: pd.DataFrame
    first_row: int
    malformed: list[str] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    def extra_quarantine(self, source: str) -> pd.DataFrame | None:
        """Quarantine rows of the lines that never became rows (malformed or bad bytes)."""
        parts = []
        if self.malformed:
            parts.append(malformed_lines(self.malformed, source))
        if self.bad_lines:
            parts.append(bad_lines(self.bad_lines, source))
        return pd.concat(parts, ignore_index=True) if parts else None


def is_sql_source(source: object) -> bool:
    if isinstance(source, str) and "://" in source:
        return True
    return type(source).__module__.startswith("sqlalchemy")


def detect_format(source: Source) -> str:
    """``csv``, ``parquet``, ``sql`` or ``frame`` from the source's type, suffix or magic bytes."""
    if isinstance(source, pd.DataFrame):
        return "frame"
    if is_sql_source(source):
        return "sql"
    path = Path(source)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] in ([".parquet"], [".pq"]):
        return "parquet"
    if any(s in (".csv", ".tsv", ".txt") for s in suffixes):
        return "csv"
    if path.is_file():
        with path.open("rb") as fh:
            if fh.read(4) == b"PAR1":
                return "parquet"
    return "csv"


def check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a file")


def check_columns(name: str, found: Iterable[str], required: Iterable[str]) -> None:
    found_list = list(found)
    missing = [c for c in required if c not in found_list]
    if missing:
        raise ValueError(f"{name}: missing required columns {missing} (found {found_list})")


def csv_header(path: Path) -> list[str]:
    """The header of a CSV file, refusing files whose header is not UTF-8 text.

    Only the header line decides: a NUL or a non-UTF-8 byte in a later line is
    a row problem (see :mod:`data.csv_bytes`), but without a readable header no
    row can be read at all.
    """
    with path.open("rb") as fh:
        head = fh.readline(MAX_LINE_BYTES + 1)
    if len(head) > MAX_LINE_BYTES:
        raise ValueError(f"{path}: not a CSV file (first line longer than {MAX_LINE_BYTES} bytes)")
    if b"\x00" in head:
        raise ValueError(f"{path}: not a text CSV file (binary content in the header)")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a UTF-8 CSV file ({exc.reason} at byte {exc.start} of the header)"
        ) from exc
    first = text.splitlines()[0] if text else ""
    if not first.strip():
        raise ValueError(f"{path}: empty CSV file (no header)")
    return next(csv.reader(io.StringIO(first)))


_STRING_TYPES = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}


def _to_pandas(batch: pa.RecordBatch | pa.Table) -> pd.DataFrame:
    return batch.to_pandas(types_mapper=_STRING_TYPES.get)


def _iter_csv(path: Path, batch_rows: int, required: Iterable[str]) -> Iterator[RawBatch]:
    header = csv_header(path)
    check_columns(str(path), header, required)
    malformed: list[str] = []

    def on_invalid(row: Any) -> str:
        malformed.append(row.text)
        return "skip"

    block = int(min(max(batch_rows * 96, 2 * MAX_LINE_BYTES), 256 << 20))
    clean = CleanLines(path)
    try:
        reader = pa_csv.open_csv(
            clean,
            read_options=pa_csv.ReadOptions(block_size=block, use_threads=True),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                # Everything as text: the id/timestamp rules, not a type guess, decide what is valid,
                # and ids like "0255396018" keep their leading zeros.
                column_types={name: pa.string() for name in header},
                null_values=CSV_NULL_VALUES,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
        row = 1
        for batch in reader:
            frame = _to_pandas(batch)
            yield RawBatch(frame, row, malformed.copy(), clean.take_bad())
            malformed.clear()
            row += len(frame)
        if malformed or clean.bad:
            yield RawBatch(_to_pandas(reader.schema.empty_table()), row, malformed.copy(),
                            clean.take_bad())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"{path}: unreadable CSV ({exc})") from exc
    finally:
        clean.close()


def _iter_parquet(
    path: Path, batch_rows: int, required: Iterable[str], wanted: Iterable[str] | None
) -> Iterator[RawBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    check_columns(str(path), names, required)
    columns = None if wanted is None else [c for c in names if c in set(wanted)]
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            frame = _to_pandas(batch)
            yield RawBatch(frame, row)
            row += len(frame)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: corrupt Parquet data near row {row} ({exc})") from exc


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _sql_statement(query: str) -> Any:
    """A table name becomes ``SELECT * FROM <quoted table>``; anything else is ``text(query)``.

    Values must be passed as bound ``params`` (``:name`` placeholders), never
    formatted into the query string.
    """
    import sqlalchemy as sa

    if _IDENTIFIER.fullmatch(query.strip()):
        schema, _, table = query.strip().rpartition(".")
        return sa.select(sa.text("*")).select_from(sa.table(table, schema=schema or None))
    return sa.text(query)


def _iter_sql(
    source: Any,
    query: str | None,
    params: Mapping[str, Any] | None,
    batch_rows: int,
    required: Iterable[str],
) -> Iterator[RawBatch]:
    import sqlalchemy as sa

    if not query:
        raise ValueError(
            f"{describe(source)}: a SQL source needs query= (a table name or a SELECT)"
        )
    owns_engine = isinstance(source, str)
    engine = sa.create_engine(source) if owns_engine else source
    name = describe(source, query)
    try:
        connect = engine.connect() if isinstance(engine, sa.Engine) else _nullcontext(engine)
        with connect as conn:
            # stream_results: server-side cursor where the driver has one (PostgreSQL), so a
            # large table is fetched chunk by chunk instead of all at once.
            conn = conn.execution_options(stream_results=True)
            result = conn.execute(_sql_statement(query), dict(params or {}))
            columns = list(result.keys())
            check_columns(name, columns, required)
            row = 1
            while True:
                rows = result.fetchmany(batch_rows)
                if not rows:
                    break
                frame = pd.DataFrame.from_records(rows, columns=columns)
                yield RawBatch(frame, row)
                row += len(frame)
    except sa.exc.SQLAlchemyError as exc:
        raise ValueError(f"{name}: SQL query failed ({exc.__class__.__name__}: {exc})") from exc
    finally:
        if owns_engine:
            engine.dispose()


class _nullcontext:
    def __init__(self, value: Any) -> None:
        self.value = value

    def __enter__(self) -> Any:
        return self.value

    def __exit__(self, *exc: object) -> None:
        return None


def _iter_frame(
    frame: pd.DataFrame, batch_rows: int, required: Iterable[str]
) -> Iterator[RawBatch]:
    check_columns("DataFrame", frame.columns, required)
    for start in range(0, len(frame), batch_rows):
        yield RawBatch(frame.iloc[start : start + batch_rows], start + 1)


def describe(source: Any, query: str | None = None) -> str:
    """A human name for a source, with any database password hidden."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    if is_sql_source(source):
        try:
            import sqlalchemy as sa

            url = sa.make_url(source) if isinstance(source, str) else source.engine.url
            text = url.render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - naming the source must never fail the load
            text = "SQL"
        return f"{text} [{query}]" if query else text
    return str(source)


def iter_raw(
    source: Source,
    fmt: str = "auto",
    *,
    required: Iterable[str] = (),
    columns: Iterable[str] | None = None,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[RawBatch]:
    """Raw batches of any supported source, after the file and column checks."""
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "frame":
        if not isinstance(source, pd.DataFrame):
            raise ValueError("fmt='frame' needs a pandas DataFrame")
        return _iter_frame(source, batch_rows, required)
    if fmt == "sql":
        return _iter_sql(source, query, params, batch_rows, required)
    path = Path(source)
    check_file(path)
    if fmt == "csv":
        return _iter_csv(path, batch_rows, required)
    if fmt == "parquet":
        return _iter_parquet(path, batch_rows, required, columns)
    raise ValueError(f"{path}: unknown format {fmt!r} (expected one of {RAW_FORMATS})")


def row_count(source: Source, fmt: str) -> int | None:
    """Total rows when cheaply known (Parquet metadata, frames), for the progress bar."""
    try:
        if isinstance(source, pd.DataFrame):
            return len(source)
        if fmt == "parquet" or (fmt == "auto" and detect_format(source) == "parquet"):
            return pq.ParquetFile(source).metadata.num_rows
    except Exception:  # noqa: BLE001 - a progress total is a nicety; the reader reports real errors
        return None
    return None



def read_table(
    source: Source,
    fmt: str,
    required: Iterable[str],
    query: str | None,
    params: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The whole table plus quarantine rows for lines that never became rows."""
    name = describe(source, query)
    parts: list[pd.DataFrame] = []
    extra: list[pd.DataFrame] = []
    for b in iter_raw(source, fmt, required=required, query=query, params=params):
        parts.append(b.frame)
        q = b.extra_quarantine(name)
        if q is not None:
            extra.append(q)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(required))
    return frame, (pd.concat(extra, ignore_index=True) if extra else None)


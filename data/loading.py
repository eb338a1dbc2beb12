"""Load event logs, catalogs and style libraries from CSV, Parquet or SQL into typed frames.

Event logs can be far larger than memory allows as Python objects, so events
are read in bounded batches (pyarrow's streaming CSV reader, Parquet row
batches, SQL chunks), each batch is validated on its own (see
:mod:`data.validation`) and only the compact, typed result is kept.
:func:`iter_event_batches` hands the batches to a streaming consumer without
ever holding the whole log; :func:`load_events` concatenates them.

Row problems go to quarantine; input problems raise a clear error naming the
file: :class:`FileNotFoundError` for a missing file, :class:`ValueError` for
missing columns or an unreadable format.

Quarantine ``row`` numbers are 1-based positions of the record in the source
(CSV: among well-formed records; a CSV line with the wrong number of fields is
quarantined as ``malformed_row`` with its text in ``line`` and no row number,
because pyarrow's streaming reader does not report it).
"""

from __future__ import annotations

import csv
import io
import logging
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from data.csv_bytes import MAX_LINE_BYTES, BadLine, CleanLines
from data.schemas import (
    EVENT_COLUMNS,
    EVENT_REQUIRED,
    ITEM_COLUMNS,
    ITEM_REQUIRED,
    STYLE_COLUMNS,
    STYLE_REQUIRED,
    empty_events,
)
from data.validation import (
    DEFAULT_FUTURE_TOLERANCE,
    DuplicateFilter,
    EventValidator,
    LoadReport,
    Reason,
    Timer,
    empty_quarantine,
    to_category,
    validate_catalog_table,
)

log = logging.getLogger(__name__)

#: Rows per streamed batch: large enough that per-batch overhead vanishes, small
#: enough that one batch's temporaries stay in the tens of megabytes.
DEFAULT_BATCH_ROWS = 250_000

#: Formats :func:`load_events` understands.  ``movielens`` is a ratings.csv read
#: through :mod:`data.adapters.movielens`.
EVENT_FORMATS = ("auto", "csv", "parquet", "sql", "movielens", "frame")

#: CSV cells read as missing.
CSV_NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None"]

Source = str | Path | pd.DataFrame | Any  # Any: a SQLAlchemy Engine or Connection
Catalog = Iterable[object] | pd.DataFrame | pd.Series | str | Path


@dataclass
class LoadResult:
    """A loaded events log: valid typed ``events``, ``quarantine`` rows, and the ``report``."""

    events: pd.DataFrame
    quarantine: pd.DataFrame
    report: LoadReport


@dataclass
class ItemsResult:
    """A loaded catalog: valid ``items``, ``quarantine`` rows, and the ``report``."""

    items: pd.DataFrame
    quarantine: pd.DataFrame
    report: LoadReport


@dataclass
class StylesResult:
    """A loaded style library: valid ``styles``, ``quarantine`` rows, and the ``report``."""

    styles: pd.DataFrame
    quarantine: pd.DataFrame
    report: LoadReport


@dataclass
class EventBatch:
    """One validated batch from :func:`iter_event_batches`."""

    events: pd.DataFrame
    quarantine: pd.DataFrame
    first_row: int


@dataclass
class _RawBatch:
    frame: pd.DataFrame
    first_row: int
    malformed: list[str] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    def extra_quarantine(self, source: str) -> pd.DataFrame | None:
        """Quarantine rows of the lines that never became rows (malformed or bad bytes)."""
        parts = []
        if self.malformed:
            parts.append(_malformed(self.malformed, source))
        if self.bad_lines:
            parts.append(_bad_lines(self.bad_lines, source))
        return pd.concat(parts, ignore_index=True) if parts else None


# ---------------------------------------------------------------------------
# Format detection and raw readers
# ---------------------------------------------------------------------------
def _is_sql_source(source: object) -> bool:
    if isinstance(source, str) and "://" in source:
        return True
    return type(source).__module__.startswith("sqlalchemy")


def detect_format(source: Source) -> str:
    """``csv``, ``parquet``, ``sql`` or ``frame`` from the source's type, suffix or magic bytes."""
    if isinstance(source, pd.DataFrame):
        return "frame"
    if _is_sql_source(source):
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


def _check_file(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a file")


def _check_columns(name: str, found: Iterable[str], required: Iterable[str]) -> None:
    found_list = list(found)
    missing = [c for c in required if c not in found_list]
    if missing:
        raise ValueError(f"{name}: missing required columns {missing} (found {found_list})")


def _csv_header(path: Path) -> list[str]:
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


def _iter_csv(path: Path, batch_rows: int, required: Iterable[str]) -> Iterator[_RawBatch]:
    header = _csv_header(path)
    _check_columns(str(path), header, required)
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
            yield _RawBatch(frame, row, malformed.copy(), clean.take_bad())
            malformed.clear()
            row += len(frame)
        if malformed or clean.bad:
            yield _RawBatch(_to_pandas(reader.schema.empty_table()), row, malformed.copy(),
                            clean.take_bad())
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ValueError(f"{path}: unreadable CSV ({exc})") from exc
    finally:
        clean.close()


def _iter_parquet(
    path: Path, batch_rows: int, required: Iterable[str], wanted: Iterable[str] | None
) -> Iterator[_RawBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from exc
    names = pf.schema_arrow.names
    _check_columns(str(path), names, required)
    columns = None if wanted is None else [c for c in names if c in set(wanted)]
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            frame = _to_pandas(batch)
            yield _RawBatch(frame, row)
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
) -> Iterator[_RawBatch]:
    import sqlalchemy as sa

    if not query:
        raise ValueError(
            f"{_describe(source)}: a SQL source needs query= (a table name or a SELECT)"
        )
    owns_engine = isinstance(source, str)
    engine = sa.create_engine(source) if owns_engine else source
    name = _describe(source, query)
    try:
        connect = engine.connect() if isinstance(engine, sa.Engine) else _nullcontext(engine)
        with connect as conn:
            # stream_results: server-side cursor where the driver has one (PostgreSQL), so a
            # large table is fetched chunk by chunk instead of all at once.
            conn = conn.execution_options(stream_results=True)
            result = conn.execute(_sql_statement(query), dict(params or {}))
            columns = list(result.keys())
            _check_columns(name, columns, required)
            row = 1
            while True:
                rows = result.fetchmany(batch_rows)
                if not rows:
                    break
                frame = pd.DataFrame.from_records(rows, columns=columns)
                yield _RawBatch(frame, row)
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
) -> Iterator[_RawBatch]:
    _check_columns("DataFrame", frame.columns, required)
    for start in range(0, len(frame), batch_rows):
        yield _RawBatch(frame.iloc[start : start + batch_rows], start + 1)


def _describe(source: Any, query: str | None = None) -> str:
    """A human name for a source, with any database password hidden."""
    if isinstance(source, pd.DataFrame):
        return "DataFrame"
    if _is_sql_source(source):
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
) -> Iterator[_RawBatch]:
    """Raw batches of any supported source, after the file and column checks."""
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt == "frame":
        if not isinstance(source, pd.DataFrame):
            raise ValueError("fmt='frame' needs a pandas DataFrame")
        return _iter_frame(source, batch_rows, required)
    if fmt == "sql":
        return _iter_sql(source, query, params, batch_rows, required)
    path = Path(source)
    _check_file(path)
    if fmt == "csv":
        return _iter_csv(path, batch_rows, required)
    if fmt == "parquet":
        return _iter_parquet(path, batch_rows, required, columns)
    raise ValueError(f"{path}: unknown format {fmt!r} (expected one of {EVENT_FORMATS})")


def _row_count(source: Source, fmt: str) -> int | None:
    """Total rows when cheaply known (Parquet metadata, frames), for the progress bar."""
    try:
        if isinstance(source, pd.DataFrame):
            return len(source)
        if fmt == "parquet" or (fmt == "auto" and detect_format(source) == "parquet"):
            return pq.ParquetFile(source).metadata.num_rows
    except Exception:  # noqa: BLE001 - a progress total is a nicety; the reader reports real errors
        return None
    return None


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------
def _adapter(
    fmt: str,
) -> tuple[str, tuple[str, ...], Callable[[pd.DataFrame], pd.DataFrame] | None]:
    """(file format, required raw columns, raw -> event columns mapper) for an event format."""
    if fmt == "movielens":
        from data.adapters import movielens

        return "csv", movielens.RATINGS_REQUIRED, movielens.ratings_to_events
    return fmt, EVENT_REQUIRED, None


def iter_event_batches(
    source: Source,
    fmt: str = "auto",
    *,
    catalog: Catalog | None = None,
    now: datetime | pd.Timestamp | str | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    id_dtype: str = "string",
    report: LoadReport | None = None,
    duplicates: DuplicateFilter | None = None,
) -> Iterator[EventBatch]:
    """Yield validated event batches, holding at most one raw batch in memory.

    Duplicates are detected across all batches.  Pass a :class:`LoadReport` as
    ``report`` to have it updated as batches go by (the caller owns it, since a
    generator cannot return one).  Arguments as for :func:`load_events`.
    """
    if fmt not in EVENT_FORMATS:
        raise ValueError(f"unknown events format {fmt!r} (expected one of {EVENT_FORMATS})")
    file_fmt, required, mapper = _adapter(fmt)
    name = _describe(source, query)
    report = report if report is not None else LoadReport(source=name)
    timer = Timer()
    validator = EventValidator(
        catalog=None if catalog is None else load_catalog_ids(catalog),
        now=now,
        future_tolerance=future_tolerance,
        id_dtype=id_dtype,
        duplicates=duplicates,
    )
    wanted = None if mapper is not None else EVENT_COLUMNS
    raw_batches = iter_raw(
        source,
        file_fmt,
        required=required,
        columns=wanted,
        query=query,
        params=params,
        batch_rows=batch_rows,
    )
    total = _row_count(source, file_fmt)
    with tqdm(
        total=total,
        unit="rows",
        desc=f"load {Path(name).name}",
        leave=False,
        disable=not sys.stderr.isatty(),
        unit_scale=True,
    ) as bar:
        for raw in raw_batches:
            frame = mapper(raw.frame) if mapper is not None else raw.frame
            events, quarantine = validator.validate(
                frame, original=raw.frame, source=name, first_row=raw.first_row
            )
            extra = raw.extra_quarantine(name)
            if extra is not None:
                quarantine = pd.concat([quarantine, extra], ignore_index=True)
            report.add(len(events), quarantine["reason"].tolist())
            report.elapsed_s += timer.elapsed
            timer = Timer()
            bar.update(len(raw.frame))
            yield EventBatch(events, quarantine, raw.first_row)


def _malformed(lines: list[str], source: str) -> pd.DataFrame:
    q = pd.DataFrame({"line": pd.array(lines, dtype="string")})
    q["reason"] = pd.array([Reason.MALFORMED_ROW.value] * len(lines), dtype="string")
    q["source"] = pd.array([source] * len(lines), dtype="string")
    q["row"] = pd.array([pd.NA] * len(lines), dtype="Int64")
    return q


def _bad_lines(lines: list[BadLine], source: str) -> pd.DataFrame:
    q = pd.DataFrame({"line": pd.array([b.text for b in lines], dtype="string")})
    q["reason"] = pd.array([b.reason for b in lines], dtype="string")
    q["detail"] = pd.array([f"line {b.line_no}: {b.detail}" for b in lines], dtype="string")
    q["source"] = pd.array([source] * len(lines), dtype="string")
    q["row"] = pd.array([pd.NA] * len(lines), dtype="Int64")
    return q


def load_events(
    source: Source,
    fmt: str = "auto",
    *,
    catalog: Catalog | None = None,
    now: datetime | pd.Timestamp | str | None = None,
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    id_dtype: str = "string",
    duplicates: DuplicateFilter | None = None,
) -> LoadResult:
    """Load, validate and type an events log; bad rows go to quarantine, never stop the load.

    ``source``: a CSV/Parquet path, a SQLAlchemy URL or Engine/Connection (with
    ``query``: a table name or a SELECT with ``:name`` placeholders bound from
    ``params``), or a DataFrame.  ``fmt``: ``auto`` (by suffix/magic/URL),
    ``csv``, ``parquet``, ``sql``, ``frame`` or ``movielens`` (a MovieLens
    ratings.csv).  ``catalog``: item ids, an items frame or a catalog file;
    events on other items are ``unknown_item``.  ``now``: the reference time for
    ``future_timestamp`` (injectable for tests).  ``id_dtype``: ``"string"``
    (default) or ``"category"`` (smaller for logs where ids repeat).
    ``duplicates``: a :class:`~data.validation.DuplicateFilter` shared by the
    loads of one night, so a row repeated in a second log is a ``duplicate``.

    Raises :class:`FileNotFoundError` for a missing file and :class:`ValueError`
    naming the file for missing columns or an unreadable format.
    """
    report = LoadReport(source=_describe(source, query))
    events: list[pd.DataFrame] = []
    quarantines: list[pd.DataFrame] = []
    for batch in iter_event_batches(
        source,
        fmt,
        catalog=catalog,
        now=now,
        future_tolerance=future_tolerance,
        query=query,
        params=params,
        batch_rows=batch_rows,
        # Batches stay strings even for id_dtype="category": per-batch categories are as
        # large as the batch when ids rarely repeat within it (measured: 2.4x the peak
        # memory on the 10M-row benchmark); one encoding of the whole column at the end wins.
        id_dtype="string",
        report=report,
        duplicates=duplicates,
    ):
        if len(batch.events):
            events.append(batch.events)
        if len(batch.quarantine):
            quarantines.append(batch.quarantine)
    timer = Timer()
    frame = concat_events(events, "string")
    events.clear()
    if id_dtype == "category":
        for name in ("user_id", "item_id", "style_id", "segment_id"):
            if name in frame.columns:
                frame[name] = to_category(frame[name])
    elif id_dtype != "string":
        raise ValueError(f"id_dtype must be 'string' or 'category', not {id_dtype!r}")
    quarantine = pd.concat(quarantines, ignore_index=True) if quarantines else empty_quarantine()
    report.elapsed_s += timer.elapsed
    log.info(
        "%s: %d rows read, %d valid, %d quarantined %s",
        report.source,
        report.rows_read,
        report.rows_valid,
        report.rows_quarantined,
        report.by_reason,
    )
    return LoadResult(frame, quarantine, report)


def concat_events(batches: list[pd.DataFrame], id_dtype: str = "string") -> pd.DataFrame:
    """Concatenate validated batches, keeping every column's dtype.

    Categorical ids (per-batch categories) are merged by unifying their
    dictionaries in pyarrow: a plain ``concat`` of categoricals with different
    categories silently falls back to ``object``, the most memory-hungry dtype
    there is, and ``union_categoricals`` is several times slower.
    """
    if not batches:
        return empty_events(id_dtype)
    columns = [c for c in EVENT_COLUMNS if any(c in b.columns for b in batches)]
    template = empty_events(id_dtype)
    aligned = []
    for b in batches:
        missing = [c for c in columns if c not in b.columns]
        if missing:
            b = b.assign(**{c: pd.Series(index=b.index, dtype=template[c].dtype) for c in missing})
        aligned.append(b[columns])
    if id_dtype != "category":
        return pd.concat(aligned, ignore_index=True)
    out = {}
    for c in columns:
        parts = [b[c] for b in aligned]
        if isinstance(parts[0].dtype, pd.CategoricalDtype) and c != "event_type":
            out[c] = _unify_categories(parts)
        else:
            out[c] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(out)


def _unify_categories(parts: list[pd.Series]) -> pd.Series:
    chunks = [
        pa.DictionaryArray.from_arrays(
            # int32 indices: per-batch codes may be int8, too narrow for the unified dictionary.
            pa.array(p.cat.codes.to_numpy().astype(np.int32), mask=p.cat.codes.to_numpy() < 0),
            pa.array(p.cat.categories, type=pa.string()),
        )
        for p in parts
    ]
    unified = pa.chunked_array(chunks).unify_dictionaries()
    codes = np.concatenate(
        [ch.indices.fill_null(-1).to_numpy(zero_copy_only=False) for ch in unified.chunks]
    )
    categories = pd.Index(pd.arrays.ArrowStringArray(unified.chunks[0].dictionary))
    return pd.Series(pd.Categorical.from_codes(codes, categories=categories))


# ---------------------------------------------------------------------------
# Catalogs and style libraries
# ---------------------------------------------------------------------------
def _read_table(
    source: Source,
    fmt: str,
    required: Iterable[str],
    query: str | None,
    params: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The whole table plus quarantine rows for lines that never became rows."""
    name = _describe(source, query)
    parts: list[pd.DataFrame] = []
    extra: list[pd.DataFrame] = []
    for b in iter_raw(source, fmt, required=required, query=query, params=params):
        parts.append(b.frame)
        q = b.extra_quarantine(name)
        if q is not None:
            extra.append(q)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(required))
    return frame, (pd.concat(extra, ignore_index=True) if extra else None)


def load_items(
    source: Source,
    fmt: str = "auto",
    *,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> ItemsResult:
    """Load a catalog (``item_id``, ``image_uri``, ``category``, ``attributes``).

    Only ``item_id`` is required: catalogs without pictures have no
    ``image_uri`` (their items are recommended, never rendered).  Bad rows go to
    quarantine (see :func:`data.validation.validate_catalog_table`).  Catalogs
    are small next to logs, so they are read whole.
    """
    name = _describe(source, query)
    timer = Timer()
    raw, extra = _read_table(source, fmt, ITEM_REQUIRED, query, params)
    items, quarantine = validate_catalog_table(raw, "items", name)
    if extra is not None:
        quarantine = pd.concat([quarantine, extra], ignore_index=True)
    report = LoadReport(source=name)
    report.add(len(items), quarantine["reason"].tolist())
    report.elapsed_s = timer.elapsed
    return ItemsResult(items[list(ITEM_COLUMNS)], quarantine, report)


def load_styles(
    source: Source,
    fmt: str = "auto",
    *,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> StylesResult:
    """Load a style library (``style_id``, ``name``, ``image_uri``, ``tags``); bad rows quarantined."""
    name = _describe(source, query)
    timer = Timer()
    raw, extra = _read_table(source, fmt, STYLE_REQUIRED, query, params)
    styles, quarantine = validate_catalog_table(raw, "styles", name)
    if extra is not None:
        quarantine = pd.concat([quarantine, extra], ignore_index=True)
    report = LoadReport(source=name)
    report.add(len(styles), quarantine["reason"].tolist())
    report.elapsed_s = timer.elapsed
    return StylesResult(styles[list(STYLE_COLUMNS)], quarantine, report)


def load_catalog_ids(catalog: Catalog) -> pd.Index:
    """Known item ids from a set/list, an items frame, or a catalog file.

    A file may be a stylerec items table (``item_id``), a MovieLens movies.csv
    (``movieId``) or an H&M articles.csv (``article_id``): the matching adapter
    normalises its ids so they equal the ids its events carry.
    """
    from data.validation import catalog_index

    if not isinstance(catalog, str | Path):
        return catalog_index(catalog)
    path = Path(catalog)
    _check_file(path)
    fmt = detect_format(path)
    header = _csv_header(path) if fmt == "csv" else pq.ParquetFile(path).schema_arrow.names
    if "item_id" in header:
        return catalog_index(load_items(path, fmt).items)
    if "movieId" in header:
        from data.adapters import movielens

        return catalog_index(movielens.load_movies(path).items)
    if "article_id" in header:
        from data.adapters import hm

        return catalog_index(hm.load_articles(path).items)
    raise ValueError(f"{path}: missing required columns ['item_id'] (found {list(header)})")


def write_quarantine(quarantine: pd.DataFrame, path: str | Path) -> Path:
    """Write quarantine rows to ``.csv`` or ``.parquet`` (by suffix), creating parent folders.

    CSV cells are escaped against spreadsheet formula injection (:func:`escape_formulas`);
    Parquet keeps the text exactly as read.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        quarantine.to_parquet(out, index=False)
    elif suffix == ".csv":
        # Every text cell quoted: a CR or LF inside a quarantined cell stays inside it.
        escape_formulas(quarantine).to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        raise ValueError(f"{out}: quarantine file must end in .csv or .parquet")
    return out


#: What a spreadsheet reads as the start of a formula (OWASP "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, made inert by a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name passed through :func:`escape_formula`.

    Quarantine rows are attacker-controlled text by definition, and a CSV of
    them is typically opened in a spreadsheet: ``=cmd|' /C calc'!A0`` must be
    shown, never run.  Numeric columns (``row``) are left as numbers.
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            out[name] = col.astype(object).map(escape_formula)
    return out.rename(columns=lambda c: escape_formula(str(c)))

"""The front door for loading: event logs, catalogs and style libraries by name and format.

``load_events(source, fmt, catalog=...)`` and :func:`iter_event_batches` name
formats (``auto``, ``csv``, ``parquet``, ``sql``, ``frame`` and the dataset
adapters' ``movielens``) and accept a catalogue in any form, including a
dataset's own catalogue file; the work is done one concept per module:

* :mod:`data.readers` -- raw batches of CSV, Parquet, SQL or a DataFrame;
* :mod:`data.event_log` -- one log streamed through mapping and validation;
* :mod:`data.catalog` -- catalogues and style libraries read whole;
* :mod:`data.validation` -- the row rules, reasons and the :class:`LoadReport`;
* :mod:`data.quarantine` -- quarantine rows and :func:`write_quarantine`;
* :mod:`data.adapters` -- MovieLens and H&M columns mapped to stylerec's.

Dependencies point down that list's opposite way: the adapters build on the
readers, the event log and the catalogue, and only this module knows them all.

Row problems go to quarantine; input problems raise a clear error naming the
file: :class:`FileNotFoundError` for a missing file, :class:`ValueError` for
missing columns or an unreadable format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from data.adapters import hm, movielens
from data.catalog import (
    Catalog,
    CatalogReader,
    ItemsResult,
    StylesResult,
    catalog_ids,
    load_items,
    load_styles,
)
from data.duplicates import DuplicateFilter
from data.event_log import (
    EventBatch,
    EventFormat,
    EventLoadOptions,
    LoadResult,
    concat_events,
    iter_events,
    load_event_log,
)
from data.quarantine import FORMULA_START, escape_formula, escape_formulas, write_quarantine
from data.readers import (
    CSV_NULL_VALUES,
    DEFAULT_BATCH_ROWS,
    RAW_FORMATS,
    Source,
    detect_format,
    iter_raw,
)
from data.reasons import LoadReport
from data.validation import DEFAULT_FUTURE_TOLERANCE

__all__ = [
    "CSV_NULL_VALUES",
    "DEFAULT_BATCH_ROWS",
    "EVENT_FORMATS",
    "FORMULA_START",
    "Catalog",
    "EventBatch",
    "EventFormat",
    "EventLoadOptions",
    "ItemsResult",
    "LoadReport",
    "LoadResult",
    "Source",
    "StylesResult",
    "concat_events",
    "detect_format",
    "escape_formula",
    "escape_formulas",
    "event_format",
    "iter_event_batches",
    "iter_raw",
    "load_catalog_ids",
    "load_events",
    "load_items",
    "load_styles",
    "write_quarantine",
]

#: Event formats by name: the raw formats read stylerec's own columns; the rest are adapters'.
NAMED_EVENT_FORMATS: Mapping[str, EventFormat] = {
    **{fmt: EventFormat(fmt, fmt) for fmt in RAW_FORMATS},
    movielens.RATINGS.name: movielens.RATINGS,
}
#: Formats :func:`load_events` understands.
EVENT_FORMATS = tuple(NAMED_EVENT_FORMATS)

#: Catalogue files of the adapters' datasets, recognised by their id column.
CATALOG_READERS: Mapping[str, CatalogReader] = {
    "movieId": movielens.load_movies,
    "article_id": hm.load_articles,
}


def event_format(fmt: str | EventFormat) -> EventFormat:
    """The :class:`EventFormat` named ``fmt`` (an ``EventFormat`` is returned as it is)."""
    if isinstance(fmt, EventFormat):
        return fmt
    if fmt not in NAMED_EVENT_FORMATS:
        raise ValueError(f"unknown events format {fmt!r} (expected one of {EVENT_FORMATS})")
    return NAMED_EVENT_FORMATS[fmt]


def load_catalog_ids(catalog: Catalog) -> pd.Index:
    """Known item ids from a set/list, an items frame, or a catalog file.

    A file may be a stylerec items table (``item_id``), a MovieLens movies.csv
    (``movieId``) or an H&M articles.csv (``article_id``): the matching adapter
    normalises its ids so they equal the ids its events carry.
    """
    return catalog_ids(catalog, CATALOG_READERS)


def iter_event_batches(
    source: Source,
    fmt: str | EventFormat = "auto",
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
    options = EventLoadOptions(
        catalog=None if catalog is None else load_catalog_ids(catalog), now=now,
        future_tolerance=future_tolerance, query=query, params=params, batch_rows=batch_rows,
        id_dtype=id_dtype, duplicates=duplicates,
    )  # fmt: skip
    return iter_events(source, event_format(fmt), options, report)


def load_events(
    source: Source,
    fmt: str | EventFormat = "auto",
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
    options = EventLoadOptions(
        catalog=None if catalog is None else load_catalog_ids(catalog), now=now,
        future_tolerance=future_tolerance, query=query, params=params, batch_rows=batch_rows,
        id_dtype=id_dtype, duplicates=duplicates,
    )  # fmt: skip
    return load_event_log(source, event_format(fmt), options)

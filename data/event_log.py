"""One event log in one format, streamed: raw batches -> mapped -> validated -> typed events.

Each raw batch (see :mod:`data.readers`) is mapped to event columns by its
:class:`EventFormat` (stylerec's own columns need no mapping; a dataset
adapter brings its own mapper), validated on its own by an
:class:`~data.validation.EventValidator` (duplicates are found across all
batches) and only the compact, typed result is kept.  :func:`iter_events`
hands batches to a streaming consumer without ever holding the whole log;
:func:`load_event_log` concatenates them.  Named formats and catalogue files
of any dataset are resolved by the front door, :mod:`data.loading`.

Quarantine ``row`` numbers are 1-based positions of the record in the source
(CSV: among well-formed records; a CSV line with the wrong number of fields is
quarantined as ``malformed_row`` with its text in ``line`` and no row number,
because pyarrow's streaming reader does not report it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from data.duplicates import DuplicateFilter
from data.normalise import to_category
from data.quarantine import empty_quarantine
from data.readers import DEFAULT_BATCH_ROWS, Source, describe, iter_raw, row_count
from data.reasons import LoadReport, Timer
from data.schemas import EVENT_COLUMNS, EVENT_REQUIRED, empty_events
from data.validation import DEFAULT_FUTURE_TOLERANCE, EventValidator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventFormat:
    """How to read one kind of event log: its file format, required raw columns, mapper.

    ``mapper`` turns a raw batch into event columns (``None``: the columns are
    already stylerec's, see :mod:`data.schemas`).  The validator sees the
    mapped frame; quarantine keeps the raw one.
    """

    name: str
    file_format: str = "auto"
    required: tuple[str, ...] = EVENT_REQUIRED
    mapper: Callable[[pd.DataFrame], pd.DataFrame] | None = None


@dataclass
class LoadResult:
    """A loaded events log: valid typed ``events``, ``quarantine`` rows, and the ``report``."""

    events: pd.DataFrame
    quarantine: pd.DataFrame
    report: LoadReport


@dataclass
class EventBatch:
    """One validated batch from :func:`iter_events`."""

    events: pd.DataFrame
    quarantine: pd.DataFrame
    first_row: int


@dataclass(frozen=True)
class EventLoadOptions:
    """How to load one log, apart from the source and its format.

    ``catalog``: known item ids (ids or an items frame; catalogue *files* are
    resolved by :func:`data.loading.load_catalog_ids`).  The rest as for
    :func:`data.loading.load_events`.
    """

    catalog: Iterable[object] | pd.DataFrame | pd.Series | None = None
    now: datetime | pd.Timestamp | str | None = None
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    query: str | None = None
    params: Mapping[str, Any] | None = None
    batch_rows: int = DEFAULT_BATCH_ROWS
    id_dtype: str = "string"
    duplicates: DuplicateFilter | None = None


def iter_events(
    source: Source,
    event_format: EventFormat,
    options: EventLoadOptions = EventLoadOptions(),  # noqa: B008 - frozen, never mutated
    report: LoadReport | None = None,
) -> Iterator[EventBatch]:
    """Yield validated event batches, holding at most one raw batch in memory.

    Duplicates are detected across all batches.  Pass a :class:`LoadReport` as
    ``report`` to have it updated as batches go by (the caller owns it, since a
    generator cannot return one).
    """
    query = options.query
    name = describe(source, query)
    report = report if report is not None else LoadReport(source=name)
    timer = Timer()
    validator = EventValidator(
        catalog=options.catalog,
        now=options.now,
        future_tolerance=options.future_tolerance,
        id_dtype=options.id_dtype,
        duplicates=options.duplicates,
    )
    mapper = event_format.mapper
    file_fmt = event_format.file_format
    wanted = None if mapper is not None else EVENT_COLUMNS
    raw_batches = iter_raw(
        source,
        file_fmt,
        required=event_format.required,
        columns=wanted,
        query=query,
        params=options.params,
        batch_rows=options.batch_rows,
    )
    total = row_count(source, file_fmt)
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


def load_event_log(
    source: Source,
    event_format: EventFormat,
    options: EventLoadOptions = EventLoadOptions(),  # noqa: B008 - frozen, never mutated
) -> LoadResult:
    """The whole log as one :class:`LoadResult`.

    Batches stay strings even for ``id_dtype="category"``: per-batch categories
    are as large as the batch when ids rarely repeat within it (measured: 2.4x
    the peak memory on the 10M-row benchmark); one encoding of the whole column
    at the end wins.
    """
    id_dtype = options.id_dtype
    if id_dtype not in ("string", "category"):
        raise ValueError(f"id_dtype must be 'string' or 'category', not {id_dtype!r}")
    report = LoadReport(source=describe(source, options.query))
    batches = iter_events(source, event_format, replace(options, id_dtype="string"), report)
    events: list[pd.DataFrame] = []
    quarantines: list[pd.DataFrame] = []
    for batch in batches:
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


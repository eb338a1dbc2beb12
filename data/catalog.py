"""Catalogues and style libraries: read whole, validated row by row, bad rows quarantined.

Catalogues are small next to event logs, so they are read whole (through
:mod:`data.readers`) and validated by :func:`data.validation.validate_catalog_table`.
:func:`catalog_ids` turns any form of catalogue (ids, an items frame, a file)
into the known item ids that event validation checks against; dataset
adapters hand it their own file readers, so this module knows no dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from data.readers import Source, check_file, csv_header, describe, detect_format, read_table
from data.reasons import LoadReport, Timer
from data.schemas import ITEM_COLUMNS, ITEM_REQUIRED, STYLE_COLUMNS, STYLE_REQUIRED
from data.validation import catalog_index, validate_catalog_table

#: What may be passed as a catalogue: ids, an items frame or Series, or a catalogue file.
Catalog = Iterable[object] | pd.DataFrame | pd.Series | str | Path


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


#: A dataset's catalogue reader, keyed by the id column that identifies its files.
CatalogReader = Callable[[Path], ItemsResult]


def _validated(
    source: Source, fmt: str, kind: str, required: Iterable[str], query: str | None,
    params: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, LoadReport]:
    name = describe(source, query)
    timer = Timer()
    raw, extra = read_table(source, fmt, required, query, params)
    table, quarantine = validate_catalog_table(raw, kind, name)
    if extra is not None:
        quarantine = pd.concat([quarantine, extra], ignore_index=True)
    report = LoadReport(source=name)
    report.add(len(table), quarantine["reason"].tolist())
    report.elapsed_s = timer.elapsed
    return table, quarantine, report


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
    items, quarantine, report = _validated(source, fmt, "items", ITEM_REQUIRED, query, params)
    return ItemsResult(items[list(ITEM_COLUMNS)], quarantine, report)


def load_styles(
    source: Source,
    fmt: str = "auto",
    *,
    query: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> StylesResult:
    """Load a style library (``style_id``, ``name``, ``image_uri``, ``tags``); bad rows quarantined."""
    styles, quarantine, report = _validated(source, fmt, "styles", STYLE_REQUIRED, query, params)
    return StylesResult(styles[list(STYLE_COLUMNS)], quarantine, report)


def catalog_ids(catalog: Catalog, readers: Mapping[str, CatalogReader] | None = None) -> pd.Index:
    """Known item ids from a set/list, an items frame, or a catalog file.

    A file is a stylerec items table (``item_id``) or, when its header has one
    of the id columns in ``readers``, read by that reader (a dataset adapter's
    catalogue loader, which normalises its ids so they equal the ids its events
    carry).
    """
    if not isinstance(catalog, str | Path):
        return catalog_index(catalog)
    path = Path(catalog)
    check_file(path)
    fmt = detect_format(path)
    header = csv_header(path) if fmt == "csv" else pq.ParquetFile(path).schema_arrow.names
    if "item_id" in header:
        return catalog_index(load_items(path, fmt).items)
    for column, reader in (readers or {}).items():
        if column in header:
            return catalog_index(reader(path).items)
    raise ValueError(f"{path}: missing required columns ['item_id'] (found {list(header)})")

"""The data layer: schemas, loading with validation and quarantine, adapters, the store, safe paths.

Public names are re-exported here so callers write ``from data import load_events``.
"""

from data.loading import (
    ItemsResult,
    LoadResult,
    StylesResult,
    iter_event_batches,
    load_catalog_ids,
    load_events,
    load_items,
    load_styles,
    write_quarantine,
)
from data.paths import UnsafePathError, resolve_under
from data.schemas import EVENT_COLUMNS, EVENT_REQUIRED, EVENT_TYPES, ITEM_COLUMNS, STYLE_COLUMNS
from data.validation import REASON_PRIORITY, LoadReport, Reason

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_REQUIRED",
    "EVENT_TYPES",
    "ITEM_COLUMNS",
    "REASON_PRIORITY",
    "STYLE_COLUMNS",
    "ItemsResult",
    "LoadReport",
    "LoadResult",
    "Reason",
    "StylesResult",
    "UnsafePathError",
    "iter_event_batches",
    "load_catalog_ids",
    "load_events",
    "load_items",
    "load_styles",
    "resolve_under",
    "write_quarantine",
]

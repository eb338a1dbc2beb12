"""Row rules for event logs, catalogs and style libraries: the validators and the rules they apply.

Why quarantine instead of raising: a nightly job reads logs written by many
systems; one bad row (a clock in the future, a float id from a spreadsheet, a
tracker that invented a new event type) must not stop the night.  Each bad row
goes to a quarantine table with the *first* reason by :data:`REASON_PRIORITY`,
good rows proceed, and a :class:`LoadReport` counts both so that a rising
quarantine rate is visible in the report rather than silently shrinking the data.

Only problems with *rows* are quarantined.  Problems with the *input as a whole*
(missing file, missing columns, unreadable format) raise a clear error naming
the file, because no row of such an input can be trusted.

The pieces live one concept per module, and this module re-exports them so
``from data.validation import ...`` stays the one front door:
:mod:`data.reasons` (:class:`Reason`, :class:`LoadReport`), :mod:`data.normalise`
(the column rules below), :mod:`data.duplicates` (:class:`DuplicateFilter`) and
:mod:`data.quarantine` (quarantine frames).

Normalisation rules (documented here because loaders, the store and tests rely on them):

* **ids**: str or int accepted, normalised to strings (surrounding whitespace
  stripped).  Missing/empty -> ``missing_id``.  A bool, a non-integral float
  (``3.5``), or any other type -> ``bad_id_type``.  An integral float (``3.0``,
  what pandas makes of an int column with a gap) becomes ``"3"``; so does the
  text ``"3.0"``, so a log reads the same from Parquet and from CSV.  Text that
  looks like a non-integral decimal or a boolean (``"3.5"``, ``"True"``) is
  ``bad_id_type`` too: it is what a float/bool column turns into when dumped to
  text.  (Consequence: an id that really is ``"3.5"`` is not accepted.)
* **id policy** (:mod:`data.ids`, matched by the store): ids are NFC-normalised;
  longer than ``MAX_ID_LENGTH`` (255) characters -> ``id_too_long``; a control
  character (NUL, tab, CR, DEL, C1) -> ``id_control_char``.  Applies to user,
  item, style and segment ids and to the catalogue's ``category``.
* **timestamps**: ISO-8601 strings (with or without offset), datetimes, or epoch
  *seconds* (int, float, or digit strings), normalised to ``datetime64[ns, UTC]``;
  naive values are taken as UTC.  Missing -> ``nan_value``; unparseable or out
  of range -> ``bad_timestamp``; later than ``now + future_tolerance`` ->
  ``future_timestamp``.
* **event_type**: case and surrounding whitespace are ignored; missing ->
  ``nan_value``; anything outside :data:`data.schemas.EVENT_TYPES` ->
  ``unknown_event_type``.
* **price** (optional): missing is allowed (no price); non-numeric, infinite
  or negative -> ``bad_value``.
* **duplicates**: a row equal to an earlier *valid* row after normalisation
  (all event columns) -> ``duplicate``; the first is kept.  Detection spans the
  whole log, across streamed batches, via a 64-bit hash per row kept in
  sorted ``uint64`` arrays (8 bytes per distinct row: 80 MB for 10M rows).  Two
  different rows colliding in 64 bits has odds of about n^2 / 2^65 (~3e-6 for
  10M rows); that is the price of bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from data.duplicates import DuplicateFilter, row_hashes
from data.ids import check_ids
from data.normalise import (
    checked_ids,
    dictionary_encode,
    is_missing_scalar,
    normalise_event_types,
    normalise_ids,
    normalise_price,
    normalise_text,
    normalise_timestamps,
    scatter,
    to_category,
)
from data.quarantine import as_text_frame, empty_quarantine, quarantine_frame
from data.reasons import REASON_PRIORITY, LoadReport, Reason, ReasonCodes, Timer
from data.schemas import EVENT_COLUMNS, EVENT_TEXT_COLUMNS, ID_DTYPE, TEXT_DTYPE

__all__ = [
    "DEFAULT_FUTURE_TOLERANCE",
    "REASON_PRIORITY",
    "DuplicateFilter",
    "EventValidator",
    "LoadReport",
    "Reason",
    "ReasonCodes",
    "Timer",
    "as_text_frame",
    "catalog_index",
    "checked_ids",
    "dictionary_encode",
    "empty_quarantine",
    "normalise_event_types",
    "normalise_ids",
    "normalise_price",
    "normalise_text",
    "normalise_timestamps",
    "quarantine_frame",
    "row_hashes",
    "to_category",
    "validate_catalog_table",
]

#: Default slack for "future" timestamps: producers' clocks drift by seconds to minutes.
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------
def catalog_index(catalog: Iterable[object] | pd.DataFrame | pd.Series) -> pd.Index:
    """Catalog item ids as a ``string`` Index (from a set/list of ids or an items frame)."""
    if isinstance(catalog, pd.DataFrame):
        if "item_id" not in catalog.columns:
            raise ValueError(
                f"catalog frame has no 'item_id' column (columns: {list(catalog.columns)})"
            )
        catalog = catalog["item_id"]
    series = catalog if isinstance(catalog, pd.Series) else pd.Series(list(catalog), dtype=object)
    ids, missing, bad = normalise_ids(series)
    ids, too_long, control = check_ids(ids)
    return pd.Index(ids[~missing & ~bad & ~too_long & ~control].unique(), dtype=ID_DTYPE)


class EventValidator:
    """Validate event batches one after another, with duplicate detection across all of them.

    ``catalog``: known item ids (any iterable or an items frame); rows whose
    item is not in it are ``unknown_item``.  ``now``: the reference for
    "future" (default: the time the validator is created, so a long load uses
    one clock).  ``id_dtype``: ``"string"`` or ``"category"`` for id columns.
    ``duplicates``: a :class:`DuplicateFilter` shared with other validators, so
    that duplicates are found across all the logs of a night, not per file.
    """

    def __init__(
        self,
        catalog: Iterable[object] | pd.DataFrame | pd.Series | None = None,
        now: datetime | pd.Timestamp | str | None = None,
        future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE,
        id_dtype: str = "string",
        duplicates: DuplicateFilter | None = None,
    ) -> None:
        self.catalog = None if catalog is None else catalog_index(catalog)
        now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        if now_ts.tzinfo is None:
            now_ts = now_ts.tz_localize("UTC")
        self.now = now_ts.tz_convert("UTC")
        self.limit = self.now + pd.Timedelta(future_tolerance)
        if id_dtype not in ("string", "category"):
            raise ValueError(f"id_dtype must be 'string' or 'category', not {id_dtype!r}")
        self.id_dtype = id_dtype
        # Shared between validators, it finds a row repeated in another file of the night.
        self.duplicates = DuplicateFilter() if duplicates is None else duplicates

    def validate(
        self,
        frame: pd.DataFrame,
        original: pd.DataFrame | None = None,
        source: str = "",
        first_row: int = 1,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Split one batch into ``(valid events, quarantine rows)``.

        ``frame`` has event columns (required ones present; optional ones may be
        absent); ``original`` is what was read (for the quarantine, e.g. MovieLens
        columns before the adapter renamed them; defaults to ``frame``).  Rows are
        numbered from ``first_row``.
        """
        original = frame if original is None else original
        n = len(frame)
        flags = ReasonCodes(n)
        out: dict[str, pd.Series] = {}
        for name in ("user_id", "item_id"):
            out[name] = checked_ids(frame[name], flags)
        event_type, missing, unknown = normalise_event_types(frame["event_type"])
        flags.flag(Reason.NAN_VALUE, missing)
        flags.flag(Reason.UNKNOWN_EVENT_TYPE, unknown)
        out["event_type"] = event_type
        ts, missing, bad = normalise_timestamps(frame["timestamp"])
        flags.flag(Reason.NAN_VALUE, missing)
        flags.flag(Reason.BAD_TIMESTAMP, bad)
        flags.flag(Reason.FUTURE_TIMESTAMP, (ts > self.limit).to_numpy(dtype=bool, na_value=False))
        out["timestamp"] = ts
        for name in ("style_id", "segment_id"):
            if name in frame.columns:
                out[name] = checked_ids(frame[name], flags, required=False)
        for name in EVENT_TEXT_COLUMNS:
            if name in frame.columns:
                out[name] = normalise_text(frame[name])
        if "price" in frame.columns:
            price, bad = normalise_price(frame["price"])
            flags.flag(Reason.BAD_VALUE, bad)
            out["price"] = price
        if self.catalog is not None:
            known = out["item_id"].isin(self.catalog).to_numpy(dtype=bool, na_value=False)
            flags.flag(Reason.UNKNOWN_ITEM, ~known)
        events = pd.DataFrame(out, index=frame.index)
        events = events[[c for c in EVENT_COLUMNS if c in events.columns]]
        ok = flags.ok
        if ok.any():
            dup = self.duplicates.mark(row_hashes(events.loc[ok]))
            flags.flag(Reason.DUPLICATE, scatter(dup, ok))
            ok = flags.ok
        rows = np.arange(first_row, first_row + n, dtype=np.int64)
        quarantine = quarantine_frame(original, ~ok, flags.reasons(), source, rows)
        valid = events.loc[ok].reset_index(drop=True)
        if self.id_dtype == "category":
            for name in ("user_id", "item_id", "style_id", "segment_id"):
                if name in valid.columns:
                    valid[name] = to_category(valid[name])
        return valid, quarantine


# ---------------------------------------------------------------------------
# Items and styles
# ---------------------------------------------------------------------------
def _json_object(value: object) -> str | None:
    """``attributes`` cell -> JSON object text (None when invalid); missing -> "{}"."""
    if is_missing_scalar(value) or (isinstance(value, str) and not value.strip()):
        return "{}"
    if isinstance(value, Mapping):
        return json.dumps(dict(value), sort_keys=True, default=str)
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return json.dumps(parsed, sort_keys=True) if isinstance(parsed, dict) else None
    return None


def _json_tags(value: object) -> str | None:
    """``tags`` cell -> JSON array text: a list, a JSON array, or "a;b" / "a|b" / "a,b" text."""
    if is_missing_scalar(value) or (isinstance(value, str) and not value.strip()):
        return "[]"
    if isinstance(value, list | tuple | np.ndarray):
        return json.dumps([str(t) for t in value])
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                return None
            return json.dumps([str(t) for t in parsed]) if isinstance(parsed, list) else None
        sep = next((c for c in ";|" if c in text), ",")
        return json.dumps([t.strip() for t in text.split(sep) if t.strip()])
    return None


def validate_catalog_table(
    frame: pd.DataFrame, kind: str, source: str, first_row: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate an items (``kind="items"``) or styles (``kind="styles"``) table.

    Rules: the id follows the id rules; a repeated id is ``duplicate`` (first
    kept: it is the primary key); ``attributes``/``tags`` must be JSON
    object/array (or empty) else ``bad_value``; for styles a missing
    ``image_uri`` is ``nan_value`` (a style without an image cannot be encoded).
    Returns ``(valid rows with the schema's columns, quarantine)``.
    """
    if kind == "items":
        key, json_col, to_json = "item_id", "attributes", _json_object
        columns = ("item_id", "image_uri", "category", "attributes")
    elif kind == "styles":
        key, json_col, to_json = "style_id", "tags", _json_tags
        columns = ("style_id", "name", "image_uri", "tags")
    else:
        raise ValueError(f"kind must be 'items' or 'styles', not {kind!r}")
    n = len(frame)
    flags = ReasonCodes(n)
    ids = checked_ids(frame[key], flags)
    out: dict[str, pd.Series] = {key: ids}
    for name in columns[1:]:
        if name == json_col:
            cells = frame[name].tolist() if name in frame.columns else [None] * n
            texts = [to_json(v) for v in cells]
            flags.flag(Reason.BAD_VALUE, np.array([t is None for t in texts], dtype=bool))
            out[name] = pd.Series(pd.array(texts, dtype=TEXT_DTYPE), index=frame.index)
        elif name == "category" and name in frame.columns:
            # Stored in an id column (String(255)): the id policy applies.
            text = normalise_text(frame[name]).str.strip()
            text, too_long, control = check_ids(text.mask(text == ""))
            flags.flag(Reason.BAD_VALUE, too_long | control)
            out[name] = text
        elif name in frame.columns:
            text = normalise_text(frame[name]).str.strip()
            out[name] = text.mask(text == "")
        else:
            out[name] = pd.Series(pd.NA, index=frame.index, dtype=TEXT_DTYPE)
    for name in columns[1:]:
        # Text columns go to the store as they are; PostgreSQL refuses NUL in text and jsonb.
        pattern = "\x00|\\\\u0000" if name == json_col else "\x00"
        has_nul = out[name].str.contains(pattern, regex=True)
        flags.flag(Reason.BAD_VALUE, has_nul.to_numpy(dtype=bool, na_value=False))
    if kind == "styles":
        flags.flag(Reason.NAN_VALUE, out["image_uri"].isna().to_numpy(dtype=bool))
    ok = flags.ok
    dup = np.zeros(n, dtype=bool)
    dup[ok] = ids[ok].duplicated().to_numpy()
    flags.flag(Reason.DUPLICATE, dup)
    ok = flags.ok
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    quarantine = quarantine_frame(frame, ~ok, flags.reasons(), source, rows)
    table = pd.DataFrame(out, index=frame.index).loc[ok].reset_index(drop=True)
    return table[list(columns)], quarantine

"""Row rules for event logs, catalogs and style libraries, quarantine, and the LoadReport.

Why quarantine instead of raising: a nightly job reads logs written by many
systems; one bad row (a clock in the future, a float id from a spreadsheet, a
tracker that invented a new event type) must not stop the night.  Each bad row
goes to a quarantine table with the *first* reason by :data:`REASON_PRIORITY`,
good rows proceed, and a :class:`LoadReport` counts both so that a rising
quarantine rate is visible in the report rather than silently shrinking the data.

Only problems with *rows* are quarantined.  Problems with the *input as a whole*
(missing file, missing columns, unreadable format) raise a clear error naming
the file, because no row of such an input can be trusted.

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
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data.ids import check_ids
from data.schemas import (
    EVENT_COLUMNS,
    EVENT_TEXT_COLUMNS,
    EVENT_TYPE_DTYPE,
    EVENT_TYPES,
    ID_DTYPE,
    TEXT_DTYPE,
    TIMESTAMP_DTYPE,
)


class Reason(StrEnum):
    """Why a row was quarantined.  The definition order is the priority order."""

    MALFORMED_ROW = "malformed_row"  # a CSV line with the wrong number of fields
    BAD_BYTES = "bad_bytes"  # a CSV line with a NUL byte or bytes that are not UTF-8
    LINE_TOO_LONG = "line_too_long"  # a CSV line longer than data.loading.MAX_LINE_BYTES
    MISSING_ID = "missing_id"  # an id is null, NaN or empty
    BAD_ID_TYPE = "bad_id_type"  # an id is a bool, a non-integral float or another type
    ID_TOO_LONG = "id_too_long"  # an id longer than data.ids.MAX_ID_LENGTH characters
    ID_CONTROL_CHAR = "id_control_char"  # an id with a control character (NUL, tab, CR, ...)
    NAN_VALUE = "nan_value"  # a required non-id value (event_type, timestamp, ...) is missing
    UNKNOWN_EVENT_TYPE = "unknown_event_type"  # not one of data.schemas.EVENT_TYPES
    BAD_TIMESTAMP = "bad_timestamp"  # unparseable or out of range
    FUTURE_TIMESTAMP = "future_timestamp"  # later than now + tolerance
    BAD_VALUE = "bad_value"  # an optional typed value (price, attributes, tags) is invalid
    UNKNOWN_ITEM = "unknown_item"  # item_id not in the catalog given
    DUPLICATE = "duplicate"  # exact copy of an earlier valid row (or a repeated primary key)


#: A row with several problems is quarantined with the first of these that applies.
REASON_PRIORITY: tuple[Reason, ...] = tuple(Reason)
_CODE = {reason: i for i, reason in enumerate(REASON_PRIORITY)}
_NO_REASON = np.int8(-1)

#: Default slack for "future" timestamps: producers' clocks drift by seconds to minutes.
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)

_FLOAT_TEXT = r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+"
_EPOCH_TEXT = r"[+-]?\d+(?:\.\d+)?"
_BOOL_WORDS = frozenset({"true", "false"})


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
@dataclass
class LoadReport:
    """Counts of one load: what was read, what passed, what was quarantined and why."""

    source: str
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def add(self, n_valid: int, reasons: Iterable[str]) -> None:
        """Count one batch: ``n_valid`` good rows and one reason per quarantined row."""
        counts = pd.Series(list(reasons), dtype=object).value_counts()
        n_bad = int(counts.sum()) if len(counts) else 0
        self.rows_read += n_valid + n_bad
        self.rows_valid += n_valid
        self.rows_quarantined += n_bad
        for reason, n in counts.items():
            self.by_reason[str(reason)] = self.by_reason.get(str(reason), 0) + int(n)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``by_reason`` in priority order so reports diff cleanly."""
        order = {r.value: i for i, r in enumerate(REASON_PRIORITY)}
        by_reason = dict(sorted(self.by_reason.items(), key=lambda kv: order.get(kv[0], 99)))
        return {
            "source": self.source,
            "rows_read": self.rows_read,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "by_reason": by_reason,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def __str__(self) -> str:
        d = self.to_dict()
        pct = 100.0 * self.rows_quarantined / self.rows_read if self.rows_read else 0.0
        lines = [
            f"source            {d['source']}",
            f"rows read         {self.rows_read:>12,}",
            f"rows valid        {self.rows_valid:>12,}",
            f"rows quarantined  {self.rows_quarantined:>12,}  ({pct:.2f}%)",
        ]
        for reason, n in d["by_reason"].items():
            lines.append(f"  {reason:<16}{n:>12,}")
        rate = self.rows_read / self.elapsed_s if self.elapsed_s > 0 else float("nan")
        lines.append(f"elapsed           {self.elapsed_s:>11.2f}s  ({rate:,.0f} rows/s)")
        return "\n".join(lines)


class Timer:
    """Wall-clock seconds since creation (``LoadReport.elapsed_s``)."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


# ---------------------------------------------------------------------------
# Column rules.  Each returns the normalised column plus boolean masks.
# ---------------------------------------------------------------------------
def _is_missing_scalar(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _is_text_dtype(dtype: object) -> bool:
    """A typed string dtype (pandas ``string``/``str``), as opposed to mixed ``object``."""
    return isinstance(dtype, pd.StringDtype)


def _string_series(values: Iterable[object] | pa.Array, index: pd.Index) -> pd.Series:
    """A pandas ``string`` Series from Python values or an arrow array."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        if values.type != pa.string() and values.type != pa.large_string():
            values = values.cast(pa.string())
        return pd.Series(pd.arrays.ArrowStringArray(values), index=index, dtype=ID_DTYPE)
    return pd.Series(pd.array(list(values), dtype=ID_DTYPE), index=index)


def _ids_from_text(text: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Id rules for a ``string`` Series (CSV cells, string columns)."""
    stripped = text.str.strip()
    missing = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool, na_value=True)
    bad = stripped.str.lower().isin(_BOOL_WORDS).to_numpy(dtype=bool, na_value=False)
    floaty = stripped.str.fullmatch(_FLOAT_TEXT).to_numpy(dtype=bool, na_value=False)
    out = stripped
    if floaty.any():
        # Rare path: fix "3.0" -> "3", reject "3.5".  Python-level but only on float-looking cells.
        fixed: list[object] = []
        for cell in stripped[floaty]:
            number = float(cell)
            fixed.append(
                str(int(number)) if math.isfinite(number) and number.is_integer() else None
            )
        fixed_s = pd.Series(pd.array(fixed, dtype=ID_DTYPE), index=stripped.index[floaty])
        bad = bad | (floaty & _scatter(fixed_s.isna().to_numpy(), floaty))
        out = stripped.copy()
        out[floaty] = fixed_s
    out = out.mask(missing | bad)
    return out.astype(ID_DTYPE), missing, bad & ~missing


def _scatter(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    full = np.zeros(len(where), dtype=bool)
    full[where] = values
    return full


def normalise_ids(series: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Apply the id rules (module doc) to one column.

    Returns ``(ids, missing, bad_type)``: ``ids`` as pandas ``string`` (NA where
    missing or bad) and two boolean numpy masks.  Typed columns take vectorised
    paths (10M int ids convert in well under a second through pyarrow); only
    ``object`` columns with mixed Python values are checked cell by cell.
    """
    index = series.index
    dtype = series.dtype
    n = len(series)
    if isinstance(dtype, pd.CategoricalDtype):
        # Dictionary-encoded columns (Parquet dictionaries, loaded frames): check each
        # category once, then spread the verdicts by code.
        codes = series.cat.codes.to_numpy()
        cats, c_missing, c_bad = normalise_ids(
            pd.Series(series.cat.categories, dtype=object)
            if series.cat.categories.dtype == object
            else pd.Series(series.cat.categories)
        )
        has = codes >= 0
        take = np.where(has, codes, 0)
        missing = ~has | (c_missing[take] & has) if len(cats) else ~has
        bad = (c_bad[take] & has) if len(cats) else np.zeros(n, dtype=bool)
        if len(cats):
            ids = cats.iloc[take].set_axis(index).mask(missing | bad)
        else:
            ids = pd.Series(pd.NA, index=index, dtype=ID_DTYPE)
        return ids, missing, bad
    if pd.api.types.is_bool_dtype(dtype):
        missing = series.isna().to_numpy(dtype=bool)
        return pd.Series(pd.NA, index=index, dtype=ID_DTYPE), missing, ~missing
    if pd.api.types.is_integer_dtype(dtype):
        arr = pa.array(series, from_pandas=True)
        missing = series.isna().to_numpy(dtype=bool)
        return _string_series(arr.cast(pa.string()), index), missing, np.zeros(n, dtype=bool)
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2**63)
        bad = ~missing & ~integral
        ints = np.where(integral, values, 0).astype(np.int64)
        arr = pa.array(ints, mask=~integral).cast(pa.string())
        return _string_series(arr, index), missing, bad
    if _is_text_dtype(dtype):
        return _ids_from_text(series.astype(ID_DTYPE))
    # object (or anything else): classify each cell
    missing = np.zeros(n, dtype=bool)
    bad = np.zeros(n, dtype=bool)
    texts: list[object] = [None] * n
    for i, value in enumerate(series.tolist()):
        if _is_missing_scalar(value):
            missing[i] = True
        elif isinstance(value, bool | np.bool_):
            bad[i] = True
        elif isinstance(value, Integral):
            texts[i] = str(int(value))
        elif isinstance(value, Real):
            number = float(value)
            if number.is_integer():
                texts[i] = str(int(number))
            else:
                bad[i] = True
        elif isinstance(value, str):
            texts[i] = value
        else:
            bad[i] = True
    ids, t_missing, t_bad = _ids_from_text(_string_series(texts, index))
    is_text = np.array([t is not None for t in texts], dtype=bool)
    return ids, missing | (t_missing & is_text), bad | (t_bad & is_text)


def checked_ids(series: pd.Series, flags: ReasonCodes, required: bool = True) -> pd.Series:
    """:func:`normalise_ids` plus the id policy, flagging each row's reason in ``flags``."""
    ids, missing, bad = normalise_ids(series)
    if required:
        flags.flag(Reason.MISSING_ID, missing)
    flags.flag(Reason.BAD_ID_TYPE, bad)
    ids, too_long, control = check_ids(ids)
    flags.flag(Reason.ID_TOO_LONG, too_long)
    flags.flag(Reason.ID_CONTROL_CHAR, control)
    return ids


def normalise_timestamps(series: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Apply the timestamp rules (module doc); returns ``(ts, missing, unparseable)``."""
    index = series.index
    n = len(series)
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
        dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        ts = (
            series.dt.tz_convert("UTC")
            if series.dt.tz is not None
            else series.dt.tz_localize("UTC")
        )
        ts = _to_ns(ts)
        missing = ts.isna().to_numpy(dtype=bool)
        return ts, missing, np.zeros(n, dtype=bool)
    if pd.api.types.is_bool_dtype(dtype):
        missing = series.isna().to_numpy(dtype=bool)
        return pd.Series(pd.NaT, index=index, dtype=TIMESTAMP_DTYPE), missing, ~missing
    if pd.api.types.is_numeric_dtype(dtype):
        seconds = series.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(seconds)
        ts = _from_epoch(pd.Series(series.to_numpy(), index=index))
        return ts, missing, ~missing & ts.isna().to_numpy(dtype=bool)
    if _is_text_dtype(dtype):
        return _timestamps_from_text(series.astype(TEXT_DTYPE))
    # object: split by the kind of each cell, then reuse the typed paths
    values = series.tolist()
    kinds = np.array([_ts_kind(v) for v in values], dtype=np.int8) if n else np.zeros(0, np.int8)
    out = pd.Series(pd.NaT, index=index, dtype=TIMESTAMP_DTYPE)
    missing = kinds == 0
    bad = kinds == 4
    for kind in (1, 2, 3):
        sel = kinds == kind
        if not sel.any():
            continue
        part = [values[i] for i in np.flatnonzero(sel)]
        sub_index = index[sel]
        if kind == 1:  # datetimes
            ts = pd.to_datetime(
                pd.Series(part, index=sub_index, dtype=object), utc=True, errors="coerce"
            )
            ts = _to_ns(ts)
            sub_bad = ts.isna().to_numpy(dtype=bool)
        elif kind == 2:  # numbers
            ts = _from_epoch(pd.Series(np.asarray(part, dtype="float64"), index=sub_index))
            sub_bad = ts.isna().to_numpy(dtype=bool)
        else:  # text
            ts, sub_missing, sub_bad = _timestamps_from_text(
                pd.Series(pd.array(part, dtype=TEXT_DTYPE), index=sub_index)
            )
            missing = missing | _scatter(sub_missing, sel)
        out[sel] = ts
        bad = bad | _scatter(sub_bad, sel)
    return out, missing, bad


def _ts_kind(value: object) -> int:
    """0 missing, 1 datetime, 2 number, 3 text, 4 other (bad)."""
    if _is_missing_scalar(value):
        return 0
    if isinstance(value, datetime | np.datetime64 | pd.Timestamp):
        return 1
    if isinstance(value, bool | np.bool_):
        return 4
    if isinstance(value, Real):
        return 2
    if isinstance(value, str):
        return 3
    return 4


_NS_MIN = pd.Timestamp.min.tz_localize("UTC")
_NS_MAX = pd.Timestamp.max.tz_localize("UTC")


def _to_ns(ts: pd.Series) -> pd.Series:
    """Cast UTC timestamps of any unit to ``datetime64[ns, UTC]`` without overflow errors.

    Past the end of the ns range (year 2262) a value is clamped to the last
    representable instant, so that it is reported as ``future_timestamp`` (what
    it is); before 1677 it becomes NaT and is reported as ``bad_timestamp``.
    """
    if ts.dtype == TIMESTAMP_DTYPE:
        return ts
    if len(ts) and ts.notna().any():
        too_late = (ts > _NS_MAX).to_numpy(dtype=bool, na_value=False)
        too_early = (ts < _NS_MIN).to_numpy(dtype=bool, na_value=False)
        if too_late.any() or too_early.any():
            ts = ts.mask(too_late | too_early)
            return ts.astype(TIMESTAMP_DTYPE).mask(too_late, _NS_MAX)
    return ts.astype(TIMESTAMP_DTYPE)


def _from_epoch(seconds: pd.Series) -> pd.Series:
    """Epoch seconds -> UTC timestamps; out-of-range values become NaT (then ``bad_timestamp``)."""
    numeric = pd.to_numeric(seconds, errors="coerce").astype("float64")
    # datetime64[ns] spans 1677..2262; anything outside is a unit mistake (e.g. milliseconds).
    numeric = numeric.where(numeric.abs() < 9.2e9)
    ts = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
    return ts.astype(TIMESTAMP_DTYPE)


def _timestamps_from_text(text: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    stripped = text.str.strip()
    missing = (stripped.isna() | (stripped == "")).to_numpy(dtype=bool, na_value=True)
    epoch = stripped.str.fullmatch(_EPOCH_TEXT).to_numpy(dtype=bool, na_value=False)
    out = pd.Series(pd.NaT, index=text.index, dtype=TIMESTAMP_DTYPE)
    if epoch.any():
        out[epoch] = _from_epoch(stripped[epoch])
    iso = ~missing & ~epoch
    if iso.any():
        parsed = pd.to_datetime(stripped[iso], utc=True, format="ISO8601", errors="coerce")
        out[iso] = _to_ns(parsed)
    bad = ~missing & out.isna().to_numpy(dtype=bool)
    return out, missing, bad


def normalise_event_types(series: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Apply the event-type rules; returns ``(event_type, missing, unknown)``."""
    if isinstance(series.dtype, pd.CategoricalDtype) and list(series.cat.categories) == list(
        EVENT_TYPES
    ):
        # Already our dtype (e.g. re-validating a loaded frame): no string work at all.
        missing = series.isna().to_numpy(dtype=bool)
        return series.astype(EVENT_TYPE_DTYPE), missing, np.zeros(len(series), dtype=bool)
    missing = series.isna().to_numpy(dtype=bool)
    text = series.astype(object).where(~missing, None).astype(TEXT_DTYPE).str.strip().str.lower()
    missing = missing | (text == "").to_numpy(dtype=bool, na_value=True)
    known = text.isin(EVENT_TYPES).to_numpy(dtype=bool, na_value=False)
    out = pd.Series(pd.Categorical(text.where(known), dtype=EVENT_TYPE_DTYPE), index=series.index)
    return out, missing, ~missing & ~known


def normalise_text(series: pd.Series) -> pd.Series:
    """Free text (experiment, variant, names): any scalar as a string, missing as NA."""
    if _is_text_dtype(series.dtype):
        return series.astype(TEXT_DTYPE)
    values = [None if _is_missing_scalar(v) else str(v) for v in series.tolist()]
    return pd.Series(pd.array(values, dtype=TEXT_DTYPE), index=series.index)


def normalise_price(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Price: float64, NaN when missing; returns ``(price, bad)`` for non-numeric/inf/negative."""
    if pd.api.types.is_bool_dtype(series.dtype):
        missing = series.isna().to_numpy(dtype=bool)
        return pd.Series(np.nan, index=series.index, dtype="float64"), ~missing
    if pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        bad = np.zeros(len(values), dtype=bool)
    else:
        raw = series.astype(object)
        missing = (
            np.array(
                [
                    _is_missing_scalar(v) or (isinstance(v, str) and not v.strip())
                    for v in raw.tolist()
                ],
                dtype=bool,
            )
            if len(raw)
            else np.zeros(0, bool)
        )
        is_bool = np.array([isinstance(v, bool | np.bool_) for v in raw.tolist()], dtype=bool)
        values = pd.to_numeric(raw.where(~missing & ~is_bool, None), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan
        )
        bad = (~missing & np.isnan(values)) | is_bool
    with np.errstate(invalid="ignore"):
        bad = bad | np.isinf(values) | (values < 0)
    values = np.where(bad, np.nan, values)
    return pd.Series(values, index=series.index, dtype="float64"), bad


# ---------------------------------------------------------------------------
# Reasons, duplicates, quarantine frames
# ---------------------------------------------------------------------------
class ReasonCodes:
    """Per-row first reason by priority: record masks in any order, the highest priority wins."""

    def __init__(self, n: int) -> None:
        self.codes = np.full(n, _NO_REASON, dtype=np.int8)

    def flag(self, reason: Reason, mask: np.ndarray) -> None:
        code = np.int8(_CODE[reason])
        take = mask & ((self.codes == _NO_REASON) | (self.codes > code))
        self.codes[take] = code

    @property
    def ok(self) -> np.ndarray:
        return self.codes == _NO_REASON

    def reasons(self) -> np.ndarray:
        """The reason strings of the flagged rows, in row order."""
        labels = np.array([r.value for r in REASON_PRIORITY], dtype=object)
        return labels[self.codes[~self.ok]]


class DuplicateFilter:
    """Remembers 64-bit hashes of accepted rows across batches, in sorted ``uint64`` runs.

    A Python ``set`` of 10M ints costs ~600 MB; sorted numpy arrays cost 80 MB
    and answer membership with ``searchsorted``.  Each batch's new hashes become
    a sorted run, and runs of similar size are merged (as in an LSM tree): a
    single ever-growing array would be copied once per batch (quadratic), while
    this keeps at most ~log2(batches) runs and copies each hash ~log2 times.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def mark(self, hashes: np.ndarray) -> np.ndarray:
        """Return True for each hash seen before (earlier batch or earlier in this one); add the rest."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        dup = pd.Series(hashes).duplicated().to_numpy()
        if self._runs and len(hashes):
            # Sorted needles: numpy's binary search starts from the previous hit, so the
            # lookups walk each run once instead of jumping at random (~10x faster).
            order = np.argsort(hashes)
            needles = hashes[order]
            found = np.zeros(len(hashes), dtype=bool)
            for run in self._runs:
                pos = np.minimum(np.searchsorted(run, needles), len(run) - 1)
                found |= run[pos] == needles
            seen_before = np.empty(len(hashes), dtype=bool)
            seen_before[order] = found
            dup = dup | seen_before
        new = np.sort(hashes[~dup])
        if len(new):
            self._runs.append(new)
            while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
                last = self._runs.pop()
                prev = self._runs.pop()
                self._runs.append(np.insert(prev, np.searchsorted(prev, last), last))
        return dup


def dictionary_encode(series: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """``(codes, uniques)`` of a string column through pyarrow, ``-1`` codes for missing.

    pyarrow's hash-based encoding is several times faster than pandas'
    ``factorize``/``astype("category")`` on arrow strings, which sort the uniques.
    """
    arr = pa.array(series, from_pandas=True)  # zero-copy for pyarrow-backed strings
    if isinstance(arr, pa.ChunkedArray):
        # Concatenated frames are chunked; one contiguous array keeps a single dictionary.
        arr = arr.combine_chunks()
    encoded = pc.dictionary_encode(arr)
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    uniques = _string_series(encoded.dictionary, pd.RangeIndex(len(encoded.dictionary)))
    return codes, uniques


def to_category(series: pd.Series) -> pd.Series:
    """A string column as ``category`` (categories in order of appearance), fast."""
    codes, uniques = dictionary_encode(series)
    cat = pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=ID_DTYPE))
    return pd.Series(cat, index=series.index, name=series.name)


_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)


def row_hashes(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of a normalised frame, equal for equal rows in any batch.

    String columns are dictionary-encoded first so each distinct id is hashed
    once per batch rather than once per row (ids repeat heavily in event logs);
    the per-column hashes are then combined by hashing them as a row of uint64s.
    """
    cols: dict[str, np.ndarray] = {}
    for name in frame.columns:
        col = frame[name]
        if isinstance(col.dtype, pd.StringDtype):
            codes, uniques = dictionary_encode(col)
            if len(uniques) == 0:  # an all-missing column (e.g. no style ids in this log)
                cols[name] = np.full(len(codes), _NULL_HASH, dtype=np.uint64)
                continue
            hashed = pd.util.hash_array(uniques.to_numpy(dtype=object), categorize=False)
            cols[name] = np.where(codes >= 0, hashed[np.maximum(codes, 0)], _NULL_HASH)
        else:
            cols[name] = pd.util.hash_pandas_object(col, index=False).to_numpy(dtype=np.uint64)
    combined = pd.DataFrame(cols, index=pd.RangeIndex(len(frame)))
    return pd.util.hash_pandas_object(combined, index=False).to_numpy(dtype=np.uint64)


def as_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The original cells as strings ("" for missing): quarantine keeps what was read, typed or not."""
    out = {}
    for name in frame.columns:
        values = frame[name].astype(object).tolist()
        out[str(name)] = pd.array(
            ["" if _is_missing_scalar(v) else str(v) for v in values], dtype=TEXT_DTYPE
        )
    return pd.DataFrame(out, index=frame.index)


def quarantine_frame(
    original: pd.DataFrame, bad: np.ndarray, reasons: np.ndarray, source: str, rows: np.ndarray
) -> pd.DataFrame:
    """Quarantine rows: original columns as text, then ``reason``, ``source``, ``row`` (1-based)."""
    q = as_text_frame(original.loc[bad])
    q["reason"] = pd.array(list(reasons), dtype=TEXT_DTYPE)
    q["source"] = pd.array([source] * len(q), dtype=TEXT_DTYPE)
    q["row"] = pd.array(rows[bad], dtype="Int64")
    return q.reset_index(drop=True)


def empty_quarantine(columns: Iterable[str] = ()) -> pd.DataFrame:
    """A quarantine frame with no rows (columns: originals, reason, source, row)."""
    frame = {c: pd.Series(dtype=TEXT_DTYPE) for c in [*columns, "reason", "source"]}
    frame["row"] = pd.Series(dtype="Int64")
    return pd.DataFrame(frame)


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
            flags.flag(Reason.DUPLICATE, _scatter(dup, ok))
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
    if _is_missing_scalar(value) or (isinstance(value, str) and not value.strip()):
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
    if _is_missing_scalar(value) or (isinstance(value, str) and not value.strip()):
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

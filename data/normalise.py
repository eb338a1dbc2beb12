"""Column rules: ids, timestamps, event types, text and prices, normalised column by column.

The rules themselves are documented in :mod:`data.validation` (loaders, the
store and tests rely on them); each function here returns the normalised
column plus boolean masks of the rows that break a rule, vectorised wherever
the column's dtype allows (10M int ids convert in well under a second).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from numbers import Integral, Real

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data.ids import check_ids
from data.reasons import Reason, ReasonCodes
from data.schemas import (
    EVENT_TYPE_DTYPE,
    EVENT_TYPES,
    ID_DTYPE,
    TEXT_DTYPE,
    TIMESTAMP_DTYPE,
)

_FLOAT_TEXT = r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+"
_EPOCH_TEXT = r"[+-]?\d+(?:\.\d+)?"
_BOOL_WORDS = frozenset({"true", "false"})


def is_missing_scalar(value: object) -> bool:
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
        bad = bad | (floaty & scatter(fixed_s.isna().to_numpy(), floaty))
        out = stripped.copy()
        out[floaty] = fixed_s
    out = out.mask(missing | bad)
    return out.astype(ID_DTYPE), missing, bad & ~missing


def scatter(values: np.ndarray, where: np.ndarray) -> np.ndarray:
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
        if is_missing_scalar(value):
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
            missing = missing | scatter(sub_missing, sel)
        out[sel] = ts
        bad = bad | scatter(sub_bad, sel)
    return out, missing, bad


def _ts_kind(value: object) -> int:
    """0 missing, 1 datetime, 2 number, 3 text, 4 other (bad)."""
    if is_missing_scalar(value):
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
    values = [None if is_missing_scalar(v) else str(v) for v in series.tolist()]
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
                    is_missing_scalar(v) or (isinstance(v, str) and not v.strip())
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


"""Input checks shared by the store's bulk writes: rows in, validated dicts out.

Every repository accepts a DataFrame or an iterable of row mappings and turns
them into column dicts lazily, so that a bulk write streams chunk by chunk;
errors name the table, the row and the column, never just "bad input".
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd

from .types import jsonable

#: Rows per executemany batch: bounds memory for streamed input (1M users).
DEFAULT_CHUNK_SIZE = 20_000
#: Keys per ``IN (...)`` list; well under SQLite's and PostgreSQL's parameter limits.
IN_CHUNK = 900


def missing(value: Any) -> bool:
    """``None``, ``pd.NA``, ``NaT`` or a float NaN: a cell with no value."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def records(rows: Any, what: str) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """Column names and a lazy iterator of row dicts from a DataFrame or an iterable of mappings.

    Lazy so that a bulk write streams: rows are converted and sent chunk by chunk.
    """
    if isinstance(rows, pd.DataFrame):
        cols = [str(c) for c in rows.columns]
        return cols, (
            dict(zip(cols, t, strict=True)) for t in rows.itertuples(index=False, name=None)
        )
    if isinstance(rows, Mapping) or isinstance(rows, str | bytes):
        raise TypeError(
            f"{what}: pass a DataFrame or an iterable of row mappings, not {type(rows).__name__}"
        )
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return [], iter(())
    if not isinstance(first, Mapping):
        raise TypeError(
            f"{what} row 0: expected a mapping of column -> value, got {type(first).__name__}"
        )
    return list(first.keys()), itertools.chain([first], it)


def check_columns(
    cols: Sequence[str], required: Sequence[str], optional: Sequence[str], what: str
) -> None:
    """Refuse missing required columns and unknown ones (a typo must not be dropped silently)."""
    absent = [c for c in required if c not in cols]
    if absent:
        raise ValueError(f"{what}: missing required column(s) {absent}; got {list(cols)}")
    unknown = [c for c in cols if c not in required and c not in optional]
    if unknown:
        raise ValueError(f"{what}: unknown column(s) {unknown}; allowed: {[*required, *optional]}")


def req_str(value: Any, where: str, column: str) -> str:
    """A required text cell; missing or blank raises naming ``where`` and ``column``."""
    if missing(value) or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{where}: {column} is missing")
    return str(value)


def opt_str(value: Any) -> str | None:
    """An optional text cell: ``None`` when missing."""
    return None if missing(value) else str(value)


def json_obj(value: Any, where: str, column: str) -> dict[str, Any]:
    """A JSON-object cell (a mapping or JSON text) made JSON-safe; missing is ``{}``."""
    if missing(value):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: {column} is not valid JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: {column} must be a JSON object, got {type(value).__name__}")
    try:
        return jsonable(value)
    except TypeError as exc:
        raise ValueError(f"{where}: {column}: {exc}") from exc


def chunks(iterable: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` items (the last may be shorter)."""
    it = iter(iterable)
    while chunk := list(itertools.islice(it, size)):
        yield chunk

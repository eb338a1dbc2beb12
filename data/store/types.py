"""Column types and value codecs shared by the models and the migration scripts.

They live in their own small module, not in ``models.py``, because migration
scripts import them: a migration must keep describing the schema of *its*
revision even after the models move on, so the types it names have to stay
stable and free of model imports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import PurePath
from typing import Any

import numpy as np
from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: JSON documents: ``jsonb`` on PostgreSQL (indexable, compact), ``JSON`` text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

#: Surrogate keys: 64-bit on PostgreSQL; SQLite only auto-increments ``INTEGER PRIMARY KEY``.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    SQLite has no timezone type and SQLAlchemy's SQLite ``DATETIME`` silently
    drops ``tzinfo``; PostgreSQL returns ``timestamptz`` in the session zone.
    Normalising to UTC on the way in and out makes run timestamps comparable
    whichever backend wrote them.  Naive datetimes are refused: their zone is
    a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (the only kind the store accepts)."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------- vectors


def encode_vector(value: Any, *, what: str = "code") -> bytes | None:
    """A 1-D float vector as little-endian float32 bytes (``None`` stays ``None``).

    Raw bytes rather than pickle (never safe to load) or JSON (4x bigger, slow
    for 100-float codes times a catalogue).  The dimension is implied by the
    length, so nothing else is needed to decode.  Accepts arrays, lists, a
    JSON list string, or bytes that are already float32.
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None  # pandas' missing value in an object column
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        if len(raw) % 4:
            raise ValueError(f"{what}: {len(raw)} bytes is not a whole number of float32 values")
        return raw
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what}: not a JSON list of numbers: {value[:40]!r}") from exc
    try:
        arr = np.asarray(value, dtype="<f4")
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{what}: cannot convert {type(value).__name__} to float32: {exc}"
        ) from exc
    if arr.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: contains NaN or infinite values")
    return arr.tobytes()


def decode_vector(raw: bytes | None) -> np.ndarray | None:
    """Inverse of :func:`encode_vector`: a writable float32 array, or ``None``."""
    if raw is None:
        return None
    return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=True)


# --------------------------------------------------------------------------- JSON


def jsonable(obj: Any) -> Any:
    """Make ``obj`` strict-JSON safe: numpy scalars/arrays, dates, paths, NaN.

    Params and metrics come from numpy and pandas code; ``json.dumps`` would
    refuse ``np.float32`` and write ``NaN`` that PostgreSQL's ``jsonb`` rejects.
    Non-finite floats become ``null`` (a metric that could not be computed).
    """
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} as JSON: {obj!r:.60}")


def json_dumps(obj: Any) -> str:
    """Serializer handed to the engine so every JSON column goes through :func:`jsonable`."""
    return json.dumps(jsonable(obj), allow_nan=False, separators=(",", ":"))

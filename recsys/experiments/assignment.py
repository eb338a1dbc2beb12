"""Deterministic experiment assignment and the exposure log.

Assignment is a pure function of ``(salt, experiment, user_id)``: the same user
lands in the same arm on every server, every process and every night, with no
assignment table to keep in sync.  A keyed cryptographic hash (BLAKE2b) is used
rather than Python's ``hash`` (randomised per process) or a modulo of a numeric
id (correlated with sign-up order); its output is uniform, so a traffic split of
``{"control": 0.5, "treatment": 0.5}`` gives each arm half of the users up to
binomial noise, which the sample-ratio-mismatch check in
:mod:`recsys.experiments.analysis` then verifies.

The exposure log (:data:`EXPOSURE_SCHEMA`) is what the serving side writes each
time it shows an item under an experiment; the analysis joins it with the click
and purchase log at the *user* level.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

HOLDOUT = "holdout"
"""Variant name given to users in the global holdout (see :func:`assign`)."""

EXPOSURE_COLUMNS: tuple[str, ...] = (
    "user_id",
    "item_id",
    "experiment",
    "variant",
    "shown_image",
    "segment_id",
    "timestamp",
)

EXPOSURE_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("experiment", pa.string(), nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        # URI of the image actually shown (original or a segment render): lets an
        # analyst check after the fact that treatment users really saw renders.
        pa.field("shown_image", pa.string(), nullable=True),
        pa.field("segment_id", pa.string(), nullable=True),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
"""Arrow schema of one exposure (impression) row."""

_SCALE = float(2**64)


def hash_unit(keys: Iterable[str]) -> np.ndarray:
    """Map each string to two independent uniform numbers in [0, 1).

    Returns an ``(n, 2)`` float64 array from the two 64-bit halves of a 16-byte
    BLAKE2b digest.  Column 0 picks the variant and column 1 the holdout, so the
    holdout fraction can change without reshuffling who is in which arm.
    The digests are joined into one buffer and decoded by numpy in a single
    call, which keeps 1M users around half a second.
    """
    digests = b"".join(
        hashlib.blake2b(key.encode("utf-8"), digest_size=16).digest() for key in keys
    )
    words = np.frombuffer(digests, dtype=">u8").reshape(-1, 2)
    # uint64 -> float64 rounds the top values up to 2**64; clip keeps [0, 1).
    return np.minimum(words.astype(np.float64) / _SCALE, np.nextafter(1.0, 0.0))


def _check_variants(variants: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    if not variants:
        raise ValueError("variants must name at least one arm")
    names = [str(v) for v in variants]
    if HOLDOUT in names:
        raise ValueError(f"variant name {HOLDOUT!r} is reserved for the holdout")
    weights = np.asarray([float(variants[v]) for v in variants], dtype=np.float64)
    if np.any(~np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(f"variant weights must be non-negative and sum > 0, got {dict(variants)}")
    return names, np.cumsum(weights / weights.sum())


def assign(
    user_ids: Sequence[str] | np.ndarray | pd.Series,
    experiment: str,
    variants: Mapping[str, float] | None = None,
    salt: str = "",
    holdout: float = 0.0,
) -> np.ndarray:
    """Assign users to arms by a salted hash of ``f"{salt}:{experiment}:{user_id}"``.

    ``variants`` maps arm name to traffic weight (normalised, so ``{"a": 1, "b": 1}``
    is a 50/50 split); ``holdout`` is the fraction of users kept out of the
    experiment altogether (returned as ``"holdout"``), drawn from an independent
    hash so that changing it does not move anyone between arms.  Changing the
    salt re-randomises everything, which is how a re-run of an experiment avoids
    carrying over users' memory of the previous one.

    Returns an object array of variant names aligned with ``user_ids``.
    """
    if variants is None:
        variants = {"control": 0.5, "treatment": 0.5}
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout}")
    names, cum = _check_variants(variants)
    prefix = f"{salt}:{experiment}:"
    u = hash_unit(prefix + str(uid) for uid in user_ids)
    if u.shape[0] == 0:
        return np.asarray([], dtype=object)
    idx = np.searchsorted(cum, u[:, 0], side="right")
    idx = np.minimum(idx, len(names) - 1)  # float round-off at the top of the last bucket
    out = np.asarray(names, dtype=object)[idx]
    if holdout > 0.0:
        out[u[:, 1] < holdout] = HOLDOUT
    return out


@dataclass(frozen=True)
class Experiment:
    """An experiment's fixed definition: name, traffic split, salt and holdout.

    Serving code keeps one of these per live experiment and calls
    :meth:`assign`; analysis code uses :attr:`variants` as the expected split
    for the sample-ratio-mismatch check.
    """

    name: str
    variants: Mapping[str, float] = field(
        default_factory=lambda: {"control": 0.5, "treatment": 0.5}
    )
    salt: str = ""
    holdout: float = 0.0

    def assign(self, user_ids: Sequence[str] | np.ndarray | pd.Series) -> np.ndarray:
        """Arms of ``user_ids`` (see :func:`assign`)."""
        return assign(user_ids, self.name, self.variants, self.salt, self.holdout)

    def expected_split(self) -> dict[str, float]:
        """Expected share of the *exposed* (non-holdout) users in each arm."""
        total = float(sum(self.variants.values()))
        return {str(k): float(v) / total for k, v in self.variants.items()}


def exposures_frame(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Validate exposure rows into a DataFrame with the exposure columns and dtypes.

    Raises ``ValueError`` naming the missing column or the first bad row, so a
    malformed log fails loudly instead of silently biasing an analysis.
    """
    df = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [c for c in EXPOSURE_COLUMNS if c not in df.columns and c not in ("shown_image", "segment_id")]
    if missing:
        raise ValueError(f"exposure rows lack column(s) {missing}")
    for opt in ("shown_image", "segment_id"):
        if opt not in df.columns:
            df[opt] = None
    for col in ("user_id", "item_id", "experiment", "variant"):
        bad = df[col].isna()
        if bad.any():
            raise ValueError(f"exposure row {int(np.flatnonzero(bad.to_numpy())[0])}: {col} is null")
        df[col] = df[col].astype(str)
    for col in ("shown_image", "segment_id"):
        df[col] = df[col].astype(object).where(df[col].notna(), None)
        df[col] = df[col].map(lambda v: None if v is None else str(v))
    try:
        # The schema stores microseconds; drop finer digits rather than fail on them.
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).dt.floor("us")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"exposure rows: bad timestamp ({exc})") from exc
    if df["timestamp"].isna().any():
        raise ValueError(
            f"exposure row {int(np.flatnonzero(df['timestamp'].isna().to_numpy())[0])}: timestamp is null"
        )
    return df[list(EXPOSURE_COLUMNS)].reset_index(drop=True)


def _to_table(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(exposures_frame(df), schema=EXPOSURE_SCHEMA, preserve_index=False)


class ExposureLogger:
    """Append exposures to a Parquet file in batches; safe to call from many threads.

    A ranking service logs one row per impression, far too often to open a file
    each time, so rows are buffered in memory and written as one Parquet row
    group every ``batch_size`` rows (and on :meth:`flush`/:meth:`close`).  One
    lock guards the buffer and the writer, so request threads may call
    :meth:`log` concurrently.  The file is only a valid Parquet file after
    :meth:`close` (Parquet writes its footer last): use the logger as a context
    manager.
    """

    def __init__(self, path: str | os.PathLike[str], batch_size: int = 10_000) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.path = Path(path)
        self.batch_size = int(batch_size)
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._writer: pq.ParquetWriter | None = None
        self._closed = False
        self.rows_written = 0

    def log(
        self,
        user_id: str,
        item_id: str,
        experiment: str,
        variant: str,
        shown_image: str | None = None,
        segment_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Record one exposure (``timestamp`` defaults to now, UTC)."""
        row = {
            "user_id": user_id,
            "item_id": item_id,
            "experiment": experiment,
            "variant": variant,
            "shown_image": shown_image,
            "segment_id": segment_id,
            "timestamp": timestamp if timestamp is not None else datetime.now(UTC),
        }
        with self._lock:
            if self._closed:
                raise ValueError(f"exposure logger for {self.path} is closed")
            self._buffer.append(row)
            if len(self._buffer) >= self.batch_size:
                self._flush_locked()

    def log_many(self, rows: pd.DataFrame) -> None:
        """Record a batch of exposures at once (a DataFrame with the exposure columns)."""
        table = _to_table(rows)
        with self._lock:
            if self._closed:
                raise ValueError(f"exposure logger for {self.path} is closed")
            self._flush_locked()
            self._write_locked(table)

    def _write_locked(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(self.path), EXPOSURE_SCHEMA)
        self._writer.write_table(table)
        self.rows_written += table.num_rows

    def _flush_locked(self) -> None:
        if self._buffer:
            rows, self._buffer = self._buffer, []
            self._write_locked(_to_table(pd.DataFrame(rows)))

    def flush(self) -> None:
        """Write buffered rows as a row group now."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush and write the Parquet footer; an empty log still gets a valid empty file."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            if self._writer is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(EXPOSURE_SCHEMA.empty_table(), str(self.path))
            else:
                self._writer.close()
            self._closed = True
            log.info("exposure log %s: %d rows", self.path, self.rows_written)

    def __enter__(self) -> ExposureLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

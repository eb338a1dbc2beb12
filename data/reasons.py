"""Why a row was quarantined, the first-reason-wins bookkeeping, and the LoadReport.

Each bad row goes to quarantine with the *first* reason by
:data:`REASON_PRIORITY`; a :class:`LoadReport` counts good and bad rows per
reason so that a rising quarantine rate is visible in the report rather than
silently shrinking the data.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd


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


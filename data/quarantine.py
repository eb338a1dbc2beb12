"""Quarantine rows: what was read, as text, with its reason; written safely for spreadsheets.

Quarantine keeps the original cells (typed or not) so that whoever fixes the
producer sees what arrived: ``reason``, ``source`` and the 1-based ``row`` of
the record (no row number for CSV lines that never became rows, whose text
goes in ``line``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from data.csv_bytes import BadLine
from data.normalise import is_missing_scalar
from data.reasons import Reason
from data.schemas import TEXT_DTYPE


def as_text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The original cells as strings ("" for missing): quarantine keeps what was read, typed or not."""
    out = {}
    for name in frame.columns:
        values = frame[name].astype(object).tolist()
        out[str(name)] = pd.array(
            ["" if is_missing_scalar(v) else str(v) for v in values], dtype=TEXT_DTYPE
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



def malformed_lines(lines: list[str], source: str) -> pd.DataFrame:
    """Quarantine rows for CSV lines with the wrong number of fields (no row number)."""
    q = pd.DataFrame({"line": pd.array(lines, dtype="string")})
    q["reason"] = pd.array([Reason.MALFORMED_ROW.value] * len(lines), dtype="string")
    q["source"] = pd.array([source] * len(lines), dtype="string")
    q["row"] = pd.array([pd.NA] * len(lines), dtype="Int64")
    return q


def bad_lines(lines: list[BadLine], source: str) -> pd.DataFrame:
    """Quarantine rows for CSV lines dropped before parsing (NUL, not UTF-8, too long)."""
    q = pd.DataFrame({"line": pd.array([b.text for b in lines], dtype="string")})
    q["reason"] = pd.array([b.reason for b in lines], dtype="string")
    q["detail"] = pd.array([f"line {b.line_no}: {b.detail}" for b in lines], dtype="string")
    q["source"] = pd.array([source] * len(lines), dtype="string")
    q["row"] = pd.array([pd.NA] * len(lines), dtype="Int64")
    return q


def write_quarantine(quarantine: pd.DataFrame, path: str | Path) -> Path:
    """Write quarantine rows to ``.csv`` or ``.parquet`` (by suffix), creating parent folders.

    CSV cells are escaped against spreadsheet formula injection (:func:`escape_formulas`);
    Parquet keeps the text exactly as read.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if suffix in (".parquet", ".pq"):
        quarantine.to_parquet(out, index=False)
    elif suffix == ".csv":
        # Every text cell quoted: a CR or LF inside a quarantined cell stays inside it.
        escape_formulas(quarantine).to_csv(out, index=False, quoting=csv.QUOTE_NONNUMERIC)
    else:
        raise ValueError(f"{out}: quarantine file must end in .csv or .parquet")
    return out


#: What a spreadsheet reads as the start of a formula (OWASP "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula, made inert by a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name passed through :func:`escape_formula`.

    Quarantine rows are attacker-controlled text by definition, and a CSV of
    them is typically opened in a spreadsheet: ``=cmd|' /C calc'!A0`` must be
    shown, never run.  Numeric columns (``row``) are left as numbers.
    """
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if col.dtype == object or isinstance(col.dtype, pd.StringDtype):
            out[name] = col.astype(object).map(escape_formula)
    return out.rename(columns=lambda c: escape_formula(str(c)))

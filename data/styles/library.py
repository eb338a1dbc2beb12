"""The described style library: what each style looks like in words, and where it may be used.

Why a library file and not just a folder of images: merchandisers control the
nightly job through it.  Today's four columns (``style_id,name,image_uri,tags``;
tags separated by ``;``, ``image_uri`` relative to the file) stay valid on
their own; every other column is optional:

==================== ==========================================================
``description``      free text, any language (searched by ``stylerec styles search``)
``strength``         default scene strength in [0, 1] (empty: ``render.scene_strength``)
``allowed_categories`` ``;``-separated: the style is used on these product categories only
``blocked_categories`` ``;``-separated: never on these categories ("no grunge on baby clothes")
``active_from``      first day (``YYYY-MM-DD``) the style may be used (a campaign)
``active_to``        last day, inclusive
``enabled``          ``true``/``false`` (also ``1/0``, ``yes/no``); default true
``pin_segments``     ``;``-separated segment ids the style is pinned to while active
``pin_weight``       the pinned style's share of those segments' blends, (0, 1]; default 0.5
==================== ==========================================================

Validation is strict and complete: every problem (unknown column, duplicate id,
bad date, missing image, ...) is collected with the *line* it is on (the header
is line 1; a Parquet file counts its header as line 1 too), and
:class:`StyleLibraryError` lists them all, so one edit round fixes the file.  A
library the nightly cannot read must stop the night: a blocked category that
was silently ignored would put the wrong style on a product.

Standard library only (pandas is imported lazily for Parquet files), so the
CLI's ``styles`` commands load fast.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from data.ids import id_problem
from data.paths import UnsafePathError, resolve_under

REQUIRED_COLUMNS: tuple[str, ...] = ("style_id", "image_uri")
LIBRARY_COLUMNS: tuple[str, ...] = (
    "style_id", "name", "image_uri", "tags", "description", "strength",
    "allowed_categories", "blocked_categories", "active_from", "active_to", "enabled",
    "pin_segments", "pin_weight",
)
DEFAULT_PIN_WEIGHT = 0.5
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclass(frozen=True)
class LibraryProblem:
    """One validation problem: the line it is on (1 = header), the column, what is wrong."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class StyleLibraryError(ValueError):
    """A library file with problems; ``problems`` lists each with its line."""

    def __init__(self, source: str, problems: Sequence[LibraryProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = "\n  ".join(str(p) for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the style library:\n  "
                         f"{shown}{more}")


@dataclass(frozen=True)
class StyleEntry:
    """One style of the library, parsed; ``line`` is where it is in the file."""

    style_id: str
    image_uri: str
    name: str = ""
    tags: tuple[str, ...] = ()
    description: str = ""
    strength: float | None = None
    allowed_categories: frozenset[str] | None = None  # None: every category
    blocked_categories: frozenset[str] = frozenset()
    active_from: date | None = None
    active_to: date | None = None
    enabled: bool = True
    pin_segments: tuple[str, ...] = ()
    pin_weight: float = DEFAULT_PIN_WEIGHT
    line: int = 0

    def active_on(self, day: date) -> bool:
        """Inside the campaign's date range (both ends inclusive; open ends always)."""
        return ((self.active_from is None or day >= self.active_from)
                and (self.active_to is None or day <= self.active_to))

    def usable_on(self, day: date) -> bool:
        """Enabled and active: a style that may enter a condition on ``day``."""
        return self.enabled and self.active_on(day)

    def allows(self, category: str | None) -> bool:
        """Whether the style may be rendered on a product of ``category``.

        An item without a category passes a block list but not an allow list
        (an allow list is a promise about where the style appears).
        """
        if category is not None and category in self.blocked_categories:
            return False
        if self.allowed_categories is not None:
            return category is not None and category in self.allowed_categories
        return True

    def refusal(self, category: str | None) -> str | None:
        """Why the style may not be used on ``category`` (None when it may)."""
        if category is not None and category in self.blocked_categories:
            return f"style {self.style_id!r} is blocked for category {category!r}"
        if self.allowed_categories is not None and (
                category is None or category not in self.allowed_categories):
            allowed = ", ".join(sorted(self.allowed_categories))
            return (f"style {self.style_id!r} is allowed only on {allowed}, "
                    f"not on category {category!r}")
        return None

    def to_record(self) -> dict[str, Any]:
        """JSON-able dict (the store keeps the library of each run as these)."""
        rec = asdict(self)
        rec["tags"] = list(self.tags)
        rec["pin_segments"] = list(self.pin_segments)
        rec["allowed_categories"] = (None if self.allowed_categories is None
                                     else sorted(self.allowed_categories))
        rec["blocked_categories"] = sorted(self.blocked_categories)
        for k in ("active_from", "active_to"):
            rec[k] = None if rec[k] is None else rec[k].isoformat()
        return rec

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> StyleEntry:
        """Inverse of :meth:`to_record`."""
        allowed = rec.get("allowed_categories")
        return cls(
            style_id=str(rec["style_id"]), image_uri=str(rec["image_uri"]),
            name=str(rec.get("name") or ""), tags=tuple(rec.get("tags") or ()),
            description=str(rec.get("description") or ""), strength=rec.get("strength"),
            allowed_categories=None if allowed is None else frozenset(allowed),
            blocked_categories=frozenset(rec.get("blocked_categories") or ()),
            active_from=_iso(rec.get("active_from")), active_to=_iso(rec.get("active_to")),
            enabled=bool(rec.get("enabled", True)),
            pin_segments=tuple(rec.get("pin_segments") or ()),
            pin_weight=float(rec.get("pin_weight", DEFAULT_PIN_WEIGHT)),
            line=int(rec.get("line", 0)),
        )


def _iso(value: Any) -> date | None:
    return None if value in (None, "") else date.fromisoformat(str(value))


@dataclass(frozen=True)
class StyleLibrary:
    """A validated library: entries in file order, the file it came from, its content digest."""

    entries: tuple[StyleEntry, ...]
    source: str = ""
    digest: str = ""
    _by_id: dict[str, StyleEntry] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({e.style_id: e for e in self.entries})

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Any:
        return iter(self.entries)

    def __contains__(self, style_id: object) -> bool:
        return style_id in self._by_id

    @property
    def ids(self) -> list[str]:
        """Style ids in file order."""
        return [e.style_id for e in self.entries]

    def get(self, style_id: str) -> StyleEntry | None:
        """The entry of ``style_id`` (None when the library has no such style)."""
        return self._by_id.get(style_id)

    def __getitem__(self, style_id: str) -> StyleEntry:
        try:
            return self._by_id[style_id]
        except KeyError:
            raise KeyError(f"style {style_id!r} is not in the library {self.source}") from None

    def to_records(self) -> list[dict[str, Any]]:
        """Every entry as a JSON-able dict (see :meth:`StyleEntry.to_record`)."""
        return [e.to_record() for e in self.entries]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], source: str = "",
                     digest: str = "") -> StyleLibrary:
        """A library from stored records (the store's copy of a run's library)."""
        return cls(tuple(StyleEntry.from_record(r) for r in records), source, digest)


# --------------------------------------------------------------------------- parsing
def _split(text: str) -> tuple[str, ...]:
    """``a;b`` (also ``a|b``, or a JSON array, as today's tags column accepts) -> ("a", "b")."""
    text = text.strip()
    if not text:
        return ()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return tuple(dict.fromkeys(str(t).strip() for t in parsed if str(t).strip()))
    sep = ";" if ";" in text else ("|" if "|" in text else ",")
    return tuple(dict.fromkeys(t.strip() for t in text.split(sep) if t.strip()))


def _unit_float(text: str, column: str, line: int, problems: list[LibraryProblem],
                low_open: bool = False) -> float | None:
    try:
        value = float(text)
    except ValueError:
        problems.append(LibraryProblem(line, column, f"{text!r} is not a number"))
        return None
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        span = "(0, 1]" if low_open else "[0, 1]"
        problems.append(LibraryProblem(line, column, f"{text!r} is not in {span}"))
        return None
    return value


def _parse_row(row: Mapping[str, str], line: int, folder: Path | None,
               check_images: bool, problems: list[LibraryProblem]) -> StyleEntry | None:
    """One data row -> entry; problems appended (None when the row cannot be used)."""
    n_before = len(problems)
    cell = {k: ("" if v is None else str(v)).strip() for k, v in row.items()}
    sid = cell.get("style_id", "")
    if not sid:
        problems.append(LibraryProblem(line, "style_id", "empty style_id"))
    elif (why := id_problem(sid)) is not None:
        problems.append(LibraryProblem(line, "style_id", f"{sid!r}: {why}"))
    uri = cell.get("image_uri", "")
    if not uri:
        problems.append(LibraryProblem(line, "image_uri", "empty image_uri"))
    elif folder is not None and check_images:
        try:
            path = resolve_under(folder, uri)
        except UnsafePathError as exc:
            problems.append(LibraryProblem(line, "image_uri", str(exc)))
        else:
            if not path.is_file():
                problems.append(LibraryProblem(
                    line, "image_uri", f"image {uri!r} not found (looked for {path})"))
    strength = None
    if cell.get("strength"):
        strength = _unit_float(cell["strength"], "strength", line, problems)
    pin_weight = DEFAULT_PIN_WEIGHT
    if cell.get("pin_weight"):
        pin_weight = _unit_float(cell["pin_weight"], "pin_weight", line, problems,
                                 low_open=True) or DEFAULT_PIN_WEIGHT
    days: dict[str, date | None] = {}
    for col in ("active_from", "active_to"):
        text = cell.get(col, "")
        days[col] = None
        if text:
            try:
                days[col] = date.fromisoformat(text)
            except ValueError:
                problems.append(LibraryProblem(line, col, f"{text!r} is not a date (YYYY-MM-DD)"))
    if days["active_from"] and days["active_to"] and days["active_from"] > days["active_to"]:
        problems.append(LibraryProblem(
            line, "active_to", f"ends ({days['active_to']}) before it starts ({days['active_from']})"))
    enabled = True
    text = cell.get("enabled", "").lower()
    if text:
        if text in _TRUE or text in _FALSE:
            enabled = text in _TRUE
        else:
            problems.append(LibraryProblem(line, "enabled", f"{cell['enabled']!r} is not true/false"))
    allowed_t = _split(cell.get("allowed_categories", ""))
    blocked = frozenset(_split(cell.get("blocked_categories", "")))
    both = sorted(blocked & set(allowed_t))
    if both:
        problems.append(LibraryProblem(
            line, "blocked_categories", f"{', '.join(both)} both allowed and blocked"))
    if len(problems) > n_before:
        return None
    return StyleEntry(
        style_id=sid, image_uri=uri, name=cell.get("name", ""), tags=_split(cell.get("tags", "")),
        description=cell.get("description", ""), strength=strength,
        allowed_categories=frozenset(allowed_t) if allowed_t else None,
        blocked_categories=blocked, active_from=days["active_from"],
        active_to=days["active_to"], enabled=enabled,
        pin_segments=_split(cell.get("pin_segments", "")), pin_weight=pin_weight, line=line,
    )


def _csv_rows(raw: bytes, source: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line, row) pairs of a CSV file; a multi-line cell keeps its first line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StyleLibraryError(source, [LibraryProblem(
            text_line(raw, exc.start), None, "not UTF-8 text")]) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise StyleLibraryError(source, [LibraryProblem(1, None, "empty file")]) from None
    rows: list[tuple[int, dict[str, str]]] = []
    start = reader.line_num + 1
    for cells in reader:
        if not any(c.strip() for c in cells):
            start = reader.line_num + 1
            continue
        rows.append((start, dict(zip(header, cells, strict=False))
                     | ({"__extra__": "x"} if len(cells) > len(header) else {})))
        start = reader.line_num + 1
    return header, rows


def text_line(raw: bytes, offset: int) -> int:
    """1-based line number of byte ``offset``."""
    return raw.count(b"\n", 0, offset) + 1


def _parquet_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    import pandas as pd

    frame = pd.read_parquet(path)
    header = [str(c) for c in frame.columns]
    rows = []
    for i, rec in enumerate(frame.astype(object).where(frame.notna(), "").to_dict("records")):
        rows.append((i + 2, {str(k): str(v) for k, v in rec.items()}))
    return header, rows


def load_style_library(path: str | Path, *, check_images: bool = True,
                       image_root: str | Path | None = None) -> StyleLibrary:
    """Read and validate a library file (CSV, or Parquet by suffix); raise on any problem.

    ``check_images``: each ``image_uri`` must name a file under ``image_root`` (default:
    the library's folder; the nightly passes its ``[inputs] image_root``, which is what
    it resolves the URIs against).
    Raises :class:`StyleLibraryError` listing every problem with its line, and
    ``FileNotFoundError`` for a missing file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: style library not found")
    source = str(path)
    raw = path.read_bytes()
    if path.suffix.lower() in (".parquet", ".pq"):
        header, rows = _parquet_rows(path)
    else:
        header, rows = _csv_rows(raw, source)
    problems: list[LibraryProblem] = []
    unknown = [h for h in header if h not in LIBRARY_COLUMNS]
    for h in unknown:
        problems.append(LibraryProblem(
            1, h, f"unknown column {h!r} (known: {', '.join(LIBRARY_COLUMNS)})"))
    for req in REQUIRED_COLUMNS:
        if req not in header:
            problems.append(LibraryProblem(1, req, f"required column {req!r} is missing"))
    dup_cols = sorted({h for h in header if header.count(h) > 1})
    for h in dup_cols:
        problems.append(LibraryProblem(1, h, f"column {h!r} appears twice"))
    if problems:
        raise StyleLibraryError(source, problems)
    entries: list[StyleEntry] = []
    first_line: dict[str, int] = {}
    for line, row in rows:
        if row.pop("__extra__", None):
            problems.append(LibraryProblem(line, None, "more cells than header columns"))
            continue
        folder = path.parent if image_root is None else Path(image_root)
        entry = _parse_row(row, line, folder, check_images, problems)
        sid = (row.get("style_id") or "").strip()
        if sid and sid in first_line:
            problems.append(LibraryProblem(
                line, "style_id", f"duplicate style_id {sid!r} (first on line {first_line[sid]})"))
            continue
        if sid:
            first_line[sid] = line
        if entry is not None:
            entries.append(entry)
    if not rows:
        problems.append(LibraryProblem(1, None, "no styles in the library"))
    if problems:
        raise StyleLibraryError(source, sorted(problems, key=lambda p: p.line))
    return StyleLibrary(tuple(entries), source, hashlib.sha256(raw).hexdigest())

"""A thorough reader of the nightly ``report.html``, shared by the nightly tests.

Instead of opening the page in a browser, the page is parsed into its
sections, paragraphs, tables and images, and every figure file is checked the
way a browser would need it: it exists beside the page (by a plain relative
name), decodes, is not a blank canvas, and can be read by a web server (its
mode honours the umask like any normal file).  Tables are checked to carry
real numbers that agree with the run record.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

SECTIONS = ("data-quality", "model", "segments", "map", "renders", "timings")
#: Figures each section must show (segment sheets are checked per segment).
FIGURES = {
    "model": ["model_ndcg.png"],
    "segments": ["segment_sizes.png"],
    "map": ["map.png"],
    "timings": ["timings.png"],
}


@dataclass
class ParsedSection:
    section_id: str
    title: str = ""
    paragraphs: list[str] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)  # rows of cell texts, header first
    images: list[str] = field(default_factory=list)


class _ReportParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, ParsedSection] = {}
        self.order: list[str] = []
        self._stack: list[ParsedSection] = []
        self._text: list[str] | None = None
        self._capture: str | None = None
        self._table: list[list[str]] | None = None
        self._row: list[str] | None = None
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            sec = ParsedSection(str(a.get("id")))
            assert sec.section_id not in self.sections, f"duplicate section {sec.section_id}"
            self.sections[sec.section_id] = sec
            self.order.append(sec.section_id)
            self._stack.append(sec)
        elif tag in ("p", "h2", "h3", "h4", "td", "th", "caption"):
            self._text, self._capture = [], tag
        elif tag == "table":
            self._table = []
        elif tag == "tr":
            self._row = []
        elif tag == "img":
            src = str(a.get("src"))
            self.images.append(src)
            assert self._stack, f"image {src} outside any section"
            self._stack[-1].images.append(src)

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._stack.pop()
        elif tag == self._capture and self._text is not None:
            text = "".join(self._text).strip()
            sec = self._stack[-1] if self._stack else None
            if tag == "p" and sec is not None:
                sec.paragraphs.append(text)
            elif tag.startswith("h") and sec is not None:
                sec.title = text
            elif tag in ("td", "th") and self._row is not None:
                self._row.append(text)
            self._text, self._capture = None, None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self._stack[-1].tables.append(self._table)
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _number(text: str, what: str) -> float:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise AssertionError(f"{what}: {text!r} is not a number") from None
    assert np.isfinite(value), f"{what}: {text!r} is not finite"
    return value


def _table(sec: ParsedSection, first_header: str) -> tuple[list[str], list[list[str]]]:
    for t in sec.tables:
        if t and t[0] and t[0][0] == first_header:
            assert len(t) > 1, f"{sec.section_id}: table {first_header!r} has no rows"
            assert all(len(r) == len(t[0]) for r in t), f"{sec.section_id}: ragged table"
            return t[0], t[1:]
    raise AssertionError(f"{sec.section_id}: no table starting with column {first_header!r}")


def _check_image(report_dir: Path, src: str) -> None:
    assert "/" not in src and "\\" not in src and ".." not in src, f"figure path {src!r}"
    path = report_dir / src
    assert path.is_file(), f"figure {src} is missing"
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o666 & ~umask, f"{src}: mode {oct(mode)}, expected {oct(0o666 & ~umask)}"
    with Image.open(path) as img:
        img.load()
        assert img.format == "PNG", src
        assert img.width > 50 and img.height > 50, src
        grey = np.asarray(img.convert("L"))
    assert grey.std() > 5, f"{src} is a blank canvas"


def check_report(
    path: Path, metrics: dict[str, dict[str, Any]], k: int, n_users: int, baselines: bool = True,
) -> dict[str, ParsedSection]:
    """Check a nightly report against the run's metrics; return its parsed sections."""
    parser = _ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    sections = parser.sections
    out = path.parent
    for sid in SECTIONS:
        assert sid in sections, f"report lacks section {sid}"
        sec = sections[sid]
        assert sec.title, f"section {sid} has no title"
        assert sec.tables or sec.images or sec.paragraphs, f"section {sid} is empty"
    segments = [s for s in parser.order if s.startswith("segment-")]
    assert len(segments) == k, segments
    for sid, figures in FIGURES.items():
        if sid == "model" and not baselines:
            continue
        for fig in figures:
            assert fig in sections[sid].images, f"section {sid} lacks figure {fig}"
    for sid in segments:
        sec = sections[sid]
        assert any(p.startswith("Style blend: ") for p in sec.paragraphs), sid
        sheets = [s for s in sec.images if s.startswith("sheet_")]
        assert len(sheets) == 1, f"{sid}: expected one contact sheet, got {sec.images}"
        with Image.open(out / sheets[0]) as img:
            rgb = np.asarray(img.convert("RGB"))
        # Grey (200, 200, 200) is the sheet's "render missing" placeholder.
        placeholder = np.all(rgb == 200, axis=2).mean()
        assert placeholder < 0.02, f"{sid}: {placeholder:.1%} of its sheet is placeholders"
    assert len(parser.images) == len(set(parser.images)), "a figure is used twice"
    for src in parser.images:
        _check_image(out, src)
    leftovers = [p.name for p in out.iterdir() if "partial" in p.name or p.name.endswith(".tmp")]
    assert not leftovers, leftovers
    text = " ".join(p for s in sections.values() for p in s.paragraphs)
    assert "?" not in text and "nan" not in text.split(), "a paragraph shows a placeholder"

    # Data quality: rows read = valid + quarantined, and the valid rows are the night's events.
    ingest = metrics["ingest"]
    _, rows = _table(sections["data-quality"], "event log")
    valid = 0
    for r in rows:
        read, ok, bad = (_number(c, f"data quality {r[0]}") for c in r[1:4])
        assert read == ok + bad
        valid += ok
    assert valid == ingest["rows_valid"]
    _, reasons = _table(sections["data-quality"], "quarantine reason (all sources)")
    for r in reasons:
        _number(r[1], f"quarantine {r[0]}")

    if baselines:
        header, rows = _table(sections["model"], "model")
        assert {"stylerec", "popularity", "als"} <= {r[0] for r in rows}
        for r in rows:
            for name, cell in zip(header[1:6], r[1:6], strict=True):
                assert 0.0 <= _number(cell, f"{r[0]} {name}") <= 1.0
            assert _number(r[-1], f"{r[0]} fit s") >= 0.0

    header, rows = _table(sections["segments"], "segment")
    assert [r[0] for r in rows] == [s.removeprefix("segment-") for s in segments]
    assert sum(_number(r[1], "shoppers") for r in rows) == n_users
    for r in rows:
        weights = [_number(w, "weight") for w in r[3].split(",")]
        assert len(weights) == len(r[2].split(",")) and abs(sum(weights) - 1.0) < 0.02, r
        assert re.fullmatch(r"[0-9a-f]{16}", r[4]), r

    _, rows = _table(sections["map"], "style")
    assert sum(_number(r[2], "favourite") for r in rows) == n_users
    assert abs(sum(_number(r[3], "share") for r in rows) - 1.0) < 0.01
    # Shoppers with no signal (all-zero vectors) are their own row, never a style's fans.
    no_signal = [r for r in rows if r[1] == "no signal"]
    assert len(no_signal) == 1 and no_signal[0][0] == "—", rows[-1]
    if "no_signal_users" in metrics.get("segment", {}):
        assert _number(no_signal[0][2], "no signal") == metrics["segment"]["no_signal_users"]

    if baselines:
        # The holdout says what is attainable: the planted ceiling on a generated world,
        # and that it is unknown otherwise.
        planted = metrics["train"]["holdout"].get("planted")
        ceiling = [p for p in sections["model"].paragraphs if p.startswith("Attainable NDCG@10")]
        assert len(ceiling) == 1, sections["model"].paragraphs
        if planted:
            assert f"{planted['personal']:.4f}" in ceiling[0]
            assert f"{planted['population']:.4f}" in ceiling[0]
            assert "stylerec scores" in ceiling[0]
        else:
            assert "unknown" in ceiling[0]

    render = metrics["render"]
    _, rows = _table(sections["renders"], "")
    counts = {r[0]: _number(r[1], r[0]) for r in rows}
    assert counts == {
        "items rendered for": render["items"], "segment conditions": render["conditions"],
        "renders needed": render["needed"], "rendered tonight": render["rendered"],
        "reused from the cache": render["reused"], "items that failed": render["failed_items"],
    }
    assert any("CIEDE2000" in p for p in sections["renders"].paragraphs), "no fidelity figure"

    _, rows = _table(sections["timings"], "stage")
    assert [r[0] for r in rows] == ["ingest", "embed", "train", "index", "segment", "render",
                                    "publish", "total"]
    seconds = [_number(r[1], f"seconds of {r[0]}") for r in rows]
    assert min(seconds) >= 0
    assert seconds[-1] == pytest.approx(sum(seconds[:-1]), rel=0.01, abs=0.01)
    return sections

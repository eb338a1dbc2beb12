"""The nightly report: one self-contained HTML page with PNG figures beside it.

The page is plain HTML (no JavaScript, no external assets) so that it opens
from a file share, a CI artefact or an e-mail attachment alike.  Every figure
is a PNG written next to ``report.html`` and referenced by a relative path.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}.muted{color:#777}
"""


@dataclass
class Table:
    """A titled table: column names and rows of cells."""

    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]
    caption: str = ""


@dataclass
class Section:
    """One report section: paragraphs, tables and figure file names, in order."""

    section_id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (file name, caption)
    subsections: list[Section] = field(default_factory=list)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        return f"{value:.4g}"
    return html.escape(str(value))


def _render_section(sec: Section, level: int = 2) -> str:
    parts = [f'<section id="{html.escape(sec.section_id)}">', f"<h{level}>{html.escape(sec.title)}</h{level}>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in sec.paragraphs]
    for t in sec.tables:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in t.columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in t.rows)
        cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
        parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    for name, caption in sec.figures:
        parts.append(
            f'<figure><img src="{html.escape(name)}" alt="{html.escape(caption)}">'
            f"<figcaption class=\"muted\">{html.escape(caption)}</figcaption></figure>"
        )
    parts += [_render_section(s, level + 1) for s in sec.subsections]
    parts.append("</section>")
    return "\n".join(parts)


def write_html(out_dir: Path, title: str, sections: Sequence[Section]) -> Path:
    """Write ``report.html``; every figure a section names must already exist beside it."""
    missing = [
        name for sec in _walk(sections) for name, _ in sec.figures if not (out_dir / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(f"report figures missing in {out_dir}: {missing}")
    nav = "".join(f'<li><a href="#{s.section_id}">{html.escape(s.title)}</a></li>' for s in sections)
    body = "\n".join(_render_section(s) for s in sections)
    page = (
        f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><ul>{nav}</ul>{body}</body></html>"
    )
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.partial")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _walk(sections: Sequence[Section]) -> list[Section]:
    out: list[Section] = []
    for s in sections:
        out.append(s)
        out += _walk(s.subsections)
    return out


def bar_chart(
    path: Path, labels: Sequence[str], values: Sequence[float], title: str, ylabel: str,
    errors: Sequence[tuple[float, float]] | None = None,
) -> Path:
    """A labelled bar chart PNG (optionally with asymmetric error bars)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(labels) + 2), 3.2), dpi=100)
    yerr = None
    if errors is not None:
        yerr = np.array([[v - lo for (lo, _), v in zip(errors, values, strict=True)],
                         [hi - v for (_, hi), v in zip(errors, values, strict=True)]])
        yerr = np.clip(yerr, 0, None)
    ax.bar(range(len(values)), values, yerr=yerr, color="#4c72b0", capsize=3)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def scatter_map(
    path: Path, users_2d: np.ndarray, user_labels: np.ndarray, styles_2d: np.ndarray,
    style_names: Sequence[str], title: str,
) -> Path:
    """2-D map: users coloured by segment, styles as labelled stars."""
    fig, ax = plt.subplots(figsize=(6.5, 5), dpi=100)
    if len(users_2d):
        ax.scatter(users_2d[:, 0], users_2d[:, 1], c=user_labels, cmap="tab10", s=6, alpha=0.5)
    ax.scatter(styles_2d[:, 0], styles_2d[:, 1], marker="*", s=160, c="black")
    for (x, y), name in zip(styles_2d, style_names, strict=True):
        ax.annotate(name, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

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


@dataclass
class StyleMap:
    """Where the map puts shoppers and styles (both in the same 2-D coordinates).

    ``styles_2d`` are arrow tips: a shopper lying in the direction of a style's
    arrow is predicted to like that style more than the average shopper does.
    """

    users_2d: np.ndarray
    styles_2d: np.ndarray
    explained: np.ndarray  # share of variance per axis


def has_signal(user_vectors: np.ndarray) -> np.ndarray:
    """Boolean per shopper: does the model know anything about their taste?

    A shopper with no usable history has an all-zero (or missing, NaN) vector;
    the segmenter puts them in the default segment.  Such a row has no favourite
    style: ``argmax`` of it would name style 0 for every one of them.
    """
    users = np.asarray(user_vectors, dtype=np.float64)
    if users.ndim != 2:
        raise ValueError(f"user vectors must be 2-D, got shape {users.shape}")
    finite = np.isfinite(users).all(axis=1)
    return finite & (np.abs(np.where(np.isfinite(users), users, 0.0)).max(axis=1, initial=0.0) > 0)


def predicted_favourites(
    user_vectors: np.ndarray, style_embeddings: np.ndarray
) -> tuple[np.ndarray, int]:
    """Shoppers per predicted favourite style, and the number with no signal.

    The favourite is the style of highest cosine-normalised score, as the
    segmenter ranks them; shoppers without signal (:func:`has_signal`) are counted
    apart, never as a style.  ``counts.sum() + no_signal == len(user_vectors)``.
    """
    users = np.asarray(user_vectors, dtype=np.float64)
    styles = np.asarray(style_embeddings, dtype=np.float64)
    signal = has_signal(users)
    known = users[signal]
    unit = known / np.maximum(np.linalg.norm(known, axis=1, keepdims=True), 1e-12)
    best = (unit @ styles.T).argmax(axis=1) if len(styles) else np.zeros(0, np.int64)
    counts = np.bincount(best, minlength=len(styles))
    return counts, int((~signal).sum())


def style_map_layout(user_vectors: np.ndarray, style_embeddings: np.ndarray) -> StyleMap:
    """A PCA biplot of the shoppers' predicted style preferences.

    Why not a PCA of user vectors and style embeddings stacked together: the
    two sets live at different scales and style embeddings share one large
    common direction, so the styles collapse into one tight knot far from the
    users and the picture says nothing.  Instead every shopper becomes the
    vector of predicted scores for each library style (user vectors L2-normalised
    as the segmenter does, so activity does not count), centred on the shopper's
    own mean score and then on the average shopper; PCA of that matrix places the shoppers, and each style is the
    loading arrow of its own column, scaled as a whole so that the longest arrow
    reaches the 95th percentile of the shoppers' distance from the centre.
    Projecting a shopper onto an arrow approximates how much more than the
    average shopper they prefer that style over their other styles, so both sets
    share one projection.
    """
    users = np.asarray(user_vectors, dtype=np.float64)
    styles = np.asarray(style_embeddings, dtype=np.float64)
    if users.ndim != 2 or styles.ndim != 2 or users.shape[1] != styles.shape[1]:
        raise ValueError(
            f"style map: user vectors {users.shape} and style embeddings {styles.shape} "
            "must be 2-D with the same width"
        )
    users = users / np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    scores = users @ styles.T
    # Double centring: per shopper (how much this style beats the shopper's other
    # styles: what picks a segment's blend) and per style (against the average shopper).
    # Without the first, axis 1 is only "likes styled pictures at all", shared by every style.
    centred = scores - scores.mean(axis=1, keepdims=True)
    centred = centred - centred.mean(axis=0, keepdims=True)
    n_comp = min(2, centred.shape[0], centred.shape[1])
    users_2d = np.zeros((len(users), 2))
    loadings = np.zeros((len(styles), 2))
    explained = np.zeros(2)
    if n_comp > 0 and np.abs(centred).max() > 0:
        # SVD of the centred matrix is PCA; signs fixed so that the figure is reproducible.
        u, sing, vt = np.linalg.svd(centred, full_matrices=False)
        rows = np.arange(n_comp)
        signs = np.sign(vt[rows, np.argmax(np.abs(vt[:n_comp]), axis=1)])
        signs[signs == 0] = 1.0
        vt = vt[:n_comp] * signs[:, None]
        users_2d[:, :n_comp] = centred @ vt.T
        loadings[:, :n_comp] = vt.T
        total = float((sing**2).sum())
        explained[:n_comp] = (sing[:n_comp] ** 2) / total if total > 0 else 0.0
    reach = float(np.percentile(np.linalg.norm(users_2d, axis=1), 95)) if len(users) else 1.0
    longest = float(np.linalg.norm(loadings, axis=1).max()) if len(styles) else 0.0
    scale = reach / longest if longest > 0 and reach > 0 else 1.0
    return StyleMap(users_2d=users_2d, styles_2d=loadings * scale, explained=explained)


def spread_labels(centres: np.ndarray, sizes: np.ndarray, iterations: int = 500) -> np.ndarray:
    """Move label boxes (centre, width x height) apart until none overlap.

    Each overlapping pair is pushed apart along the axis where they overlap
    least, half each; deterministic (ties broken by index), so the same map is
    drawn the same way every night.  Good for the tens of labels of a style
    library, not for thousands.
    """
    pos = np.array(centres, dtype=np.float64, copy=True)
    size = np.asarray(sizes, dtype=np.float64)
    n = len(pos)
    for _ in range(iterations):
        moved = False
        for i in range(n):
            for j in range(i + 1, n):
                d = pos[j] - pos[i]
                overlap = (size[i] + size[j]) / 2 - np.abs(d)
                if overlap[0] <= 0 or overlap[1] <= 0:
                    continue
                moved = True
                axis = 0 if overlap[0] < overlap[1] else 1
                direction = np.sign(d[axis]) or 1.0
                shift = (overlap[axis] / 2 + 1e-9) * direction
                pos[i, axis] -= shift
                pos[j, axis] += shift
        if not moved:
            break
    return pos


def style_biplot(
    path: Path, layout: StyleMap, user_labels: np.ndarray, segment_names: Sequence[str],
    style_names: Sequence[str], title: str,
) -> Path:
    """Draw :func:`style_map_layout`: shoppers coloured by segment, styles as labelled arrows."""
    users, tips = layout.users_2d, layout.styles_2d
    fig, ax = plt.subplots(figsize=(8.5, 7), dpi=100)
    cmap = plt.get_cmap("tab10")
    labels = np.asarray(user_labels)
    for k, name in enumerate(segment_names):
        pts = users[labels == k]
        colour = cmap(k % 10)
        ax.scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.5, color=colour, linewidths=0,
                   label=f"{name} ({len(pts)})")
        if len(pts):
            cx, cy = pts.mean(axis=0)
            ax.scatter([cx], [cy], s=140, color=colour, edgecolors="black", linewidths=1.2,
                       zorder=4)
    ax.axhline(0, color="#bbb", lw=0.6, zorder=0)
    ax.axvline(0, color="#bbb", lw=0.6, zorder=0)
    for (x, y) in tips:
        ax.annotate("", xy=(x, y), xytext=(0, 0), zorder=5,
                    arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 1.1})
    everything = np.vstack([users, tips]) if len(users) else tips
    lo, hi = np.percentile(everything, 1, axis=0), np.percentile(everything, 99, axis=0)
    lo, hi = np.minimum(lo, tips.min(axis=0)), np.maximum(hi, tips.max(axis=0))
    extent = float(max(hi - lo)) or 1.0
    # Label boxes in data units: about 1.6 % of the extent per character, 4.5 % high.
    sizes = np.array([[0.016 * extent * (len(n) + 1), 0.045 * extent] for n in style_names])
    norms = np.linalg.norm(tips, axis=1, keepdims=True)
    outward = np.where(norms > 0, tips / np.maximum(norms, 1e-12), 0.0)
    anchors = tips + outward * 0.06 * extent
    placed = spread_labels(anchors, sizes)
    for (tx, ty), (lx, ly), name in zip(tips, placed, style_names, strict=True):
        ax.plot([tx, lx], [ty, ly], color="#888", lw=0.5, zorder=5)
        ax.text(lx, ly, name, fontsize=9, ha="center", va="center", zorder=6,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "#999", "lw": 0.5})
    pad = 0.08 * extent
    ax.set_xlim(min(lo[0], placed[:, 0].min()) - pad, max(hi[0], placed[:, 0].max()) + pad)
    ax.set_ylim(min(lo[1], placed[:, 1].min()) - pad, max(hi[1], placed[:, 1].max()) + pad)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"axis 1 ({layout.explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"axis 2 ({layout.explained[1]:.0%} of the variance)")
    ax.set_title(title, fontsize=11)
    ax.legend(loc="best", fontsize=8, markerscale=2.5, title="segment (shoppers shown)",
              title_fontsize=8, framealpha=0.85)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

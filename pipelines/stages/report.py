"""Stage 8, report: ``report.html`` with PNG figures, for the people who look at the night.

Sections: data quality, model metrics against the baselines, segments (sizes,
each segment's style blend and a contact sheet of its renders), a 2-D map of
users and styles, renders done vs reused, and time per stage.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data.paths import resolve_under
from pipelines.cache import RenderCache
from pipelines.context import STAGES, RunContext, check_run_id
from pipelines.controls_report import controls_section, render_path
from pipelines.report import (
    Section,
    Table,
    bar_chart,
    has_signal,
    predicted_favourites,
    style_biplot,
    style_map_layout,
    write_html,
)
from pipelines.stages.common import chosen_items
from recsys.run_bundle import EVENTS, ITEMS, STYLES
from recsys.segments import Segmentation
from stylizer.image_io import load_image
from stylizer.sheet import contact_sheet
from stylizer.weights import model_version

SHEET_ITEMS = 8
THUMB = 160
#: The favourite-style table's row for shoppers the model knows nothing about.
NO_SIGNAL = "no signal"


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def report_dir(ctx: RunContext) -> Path:
    """``<report_dir>/<run_id>/``: one folder per run, so old reports stay readable.

    Resolved under the configured report folder, so a planted symlink cannot
    send the figures elsewhere.
    """
    root = ctx.config.path(ctx.config.outputs.report_dir)
    root.mkdir(parents=True, exist_ok=True)
    out = resolve_under(root, check_run_id(ctx.run_id))
    out.mkdir(parents=True, exist_ok=True)
    return out


def figure_name(prefix: str, ident: str) -> str:
    """``<prefix>_<ident>.png`` for an id that came from data; refuses anything path-like."""
    if not _SAFE_NAME.match(ident) or ".." in ident:
        raise ValueError(f"report: {ident!r} is not a safe file-name part for a figure")
    return f"{prefix}_{ident}.png"


def _data_quality(ctx: RunContext) -> Section:
    ingest = ctx.metrics.get("ingest", {})
    sec = Section("data-quality", "Data quality")
    rows = [
        [s["source"], s["rows_read"], s["rows_valid"], s["rows_quarantined"]]
        for s in ingest.get("sources", [])
    ]
    sec.tables.append(Table(["event log", "rows read", "valid", "quarantined"], rows))
    counts = ctx.store.quarantine_counts(ctx.run_id)
    sec.tables.append(Table(
        ["quarantine reason (all sources)", "rows"],
        sorted(counts.items(), key=lambda kv: -kv[1]) or [["(none)", 0]],
    ))
    embed = ctx.metrics.get("embed", {})
    for what in ("items", "styles"):
        s = embed.get(what, {})
        sec.paragraphs.append(
            f"{what}: {s.get('images', 0)} images, {s.get('computed', 0)} codes computed, "
            f"{s.get('cached', 0)} reused from the code cache, {s.get('bad', 0)} unreadable "
            "(quarantined)."
        )
    sec.paragraphs.append(
        f"{ingest.get('events', 0)} events of {ingest.get('users', 0)} users on "
        f"{ingest.get('items', 0)} items; {ingest.get('rows_outside_window', 0)} rows outside "
        "the time window."
    )
    return sec


def _model_metrics(ctx: RunContext, out: Path) -> Section:
    sec = Section("model", "Model metrics on a time holdout")
    holdout = ctx.metrics.get("train", {}).get("holdout")
    if not holdout:
        sec.paragraphs.append("Baseline evaluation is switched off (model.baselines = false).")
        return sec
    models = list(holdout["models"])
    rows = [[m] + [holdout["models"][m].get(c, float("nan")) for c in
                   ("ndcg@10", "recall@10", "map@10", "hitrate@10", "coverage", "fit_seconds")]
            for m in models]
    sec.paragraphs.append(
        f"Each user's last {holdout['holdout_last']} positive events are held out; "
        f"{holdout['test_users']} users are scored. 95% bootstrap intervals on NDCG@10 in the plot."
    )
    sec.tables.append(Table(
        ["model", "NDCG@10", "Recall@10", "MAP@10", "HitRate@10", "coverage", "fit s"], rows))
    ndcg = [holdout["models"][m]["ndcg@10"] for m in models]
    ci = [tuple(holdout["models"][m].get("ndcg@10_ci", (v, v))) for m, v in zip(models, ndcg, strict=True)]
    bar_chart(out / "model_ndcg.png", models, ndcg, "NDCG@10 on the holdout", "NDCG@10", ci)
    sec.figures.append(("model_ndcg.png", "NDCG@10 per model with 95% bootstrap intervals"))
    sec.paragraphs.append(ceiling_paragraph(holdout))
    return sec


def ceiling_paragraph(holdout: dict[str, Any]) -> str:
    """What the holdout's attainable NDCG@10 is, and where stylerec stands against it.

    Without it a reader sees stylerec beside popularity and cannot tell "at the
    ceiling of this world" from "no better than popularity".  Known only for a
    generated world (planted truth, :mod:`pipelines.ceiling`); otherwise the
    paragraph says so.
    """
    planted = holdout.get("planted")
    models = holdout.get("models", {})
    if not planted:
        return ("Attainable NDCG@10: unknown for these logs (known only for a generated demo "
                "world, whose shoppers' tastes are planted). Compare stylerec with popularity "
                "and the other baselines above.")
    ours = models.get("stylerec", {}).get("ndcg@10")
    pop = models.get("popularity", {}).get("ndcg@10")
    personal, population = planted["personal"], planted["population"]
    low, high = planted["personal_low"], planted["personal_high"]
    text = (
        f"Attainable NDCG@10 on this generated world: ranking every shopper by their planted "
        f"expected clicks (true tastes and click model) scores {personal:.4f} (95% interval "
        f"{low:.4f}–{high:.4f}); the planted population average, without any personalisation, "
        f"{population:.4f}."
    )
    if low <= population <= high:
        text += (" The two are within the interval of each other: which product a shopper "
                 "clicks is decided mostly by its popularity, so on this holdout knowing every "
                 "taste is not measurably better than a good popularity ranking; the personal "
                 "signal of this world is in the styles (see the map).")
    else:
        text += (f" Knowing every taste is worth {personal / population - 1:+.1%} over the "
                 "population ranking on this holdout.")
    if ours is not None:
        if ours >= low:
            verdict = "at the attainable level (within or above the planted ranking's interval)"
        else:
            verdict = f"below the attainable level by {1 - ours / personal:.0%} of it"
        text += f" stylerec scores {ours:.4f}: {verdict}"
        if pop is not None:
            text += f"; popularity {pop:.4f}"
        text += "."
    return text


def _segment_sheets(ctx: RunContext, out: Path, conditions: list[dict[str, Any]]) -> list[Section]:
    """One subsection per segment: its blend, its style thumbnails and a render sheet."""
    cfg = ctx.config
    styles = ctx.bundle.read_table(STYLES).set_index("style_id")
    items = chosen_items(ctx, ctx.bundle.read_table(ITEMS))
    events = ctx.bundle.read_table(EVENTS, columns=["item_id"])
    pop = events["item_id"].astype(str).value_counts()
    items = items.assign(pop=items["item_id"].astype(str).map(pop).fillna(0))
    sample = items.sort_values("pop", ascending=False, kind="stable").head(SHEET_ITEMS)
    cache = RenderCache(cfg.path(cfg.outputs.render_dir), cfg.render.format, cfg.render.quality)
    version = model_version()
    originals = [load_image(p, max_side=THUMB).rgb for p in sample["image_path"]]
    subsections: list[Section] = []
    for cond in conditions:
        sid = cond["segment_id"]
        sub = Section(f"segment-{sid}", f"Segment {sid} ({cond['n_users']} shoppers)")
        names = [str(styles.loc[s, "name"]) if s in styles.index else s for s in cond["style_ids"]]
        blend = ", ".join(f"{n} {w:.0%}" for n, w in zip(names, cond["weights"], strict=True))
        sub.paragraphs.append(f"Style blend: {blend}.")
        renders: list[np.ndarray | None] = []
        for item in sample.itertuples(index=False):
            path = render_path(ctx, cache, version, item, cond)  # the item's category's condition
            renders.append(load_image(path, max_side=THUMB).rgb if path is not None else None)
        style_thumbs = [load_image(styles.loc[s, "image_path"], max_side=THUMB).rgb
                        for s in cond["style_ids"] if s in styles.index]
        name = figure_name("sheet", sid)
        contact_sheet(
            [originals, renders], out / name, row_labels=["original", f"segment {sid}"],
            header=style_thumbs, thumb=THUMB,
        )
        sub.figures.append((name, f"top row: originals; bottom row: renders for segment {sid}; "
                                  f"header: its styles ({blend})"))
        subsections.append(sub)
    return subsections


def _segments(ctx: RunContext, out: Path, conditions: list[dict[str, Any]]) -> Section:
    sec = Section("segments", "Segments")
    ids = [c["segment_id"] for c in conditions]
    sizes = [c["n_users"] for c in conditions]
    seg_metrics = ctx.metrics.get("segment", {})
    sec.paragraphs.append(
        f"{len(conditions)} segments; default segment for unknown shoppers: "
        f"{seg_metrics.get('default_segment', '?')}; conditions kept from the previous run: "
        f"{seg_metrics.get('conditions_kept', 0)}."
    )
    sec.tables.append(Table(
        ["segment", "shoppers", "styles", "weights", "condition"],
        [[c["segment_id"], c["n_users"], ", ".join(c["style_ids"]),
          ", ".join(f"{w:.2f}" for w in c["weights"]), c["condition_hash"]] for c in conditions],
    ))
    bar_chart(out / "segment_sizes.png", ids, sizes, "Shoppers per segment", "shoppers")
    sec.figures.append(("segment_sizes.png", "shoppers per segment"))
    sec.subsections = _segment_sheets(ctx, out, conditions)
    return sec


def _map(ctx: RunContext, out: Path, conditions: list[dict[str, Any]],
         seg: Segmentation) -> Section:
    sec = Section("map", "Map of shoppers and styles")
    table = ctx.bundle.read_style_embeddings()
    style_ids = table.style_ids
    style_emb = np.asarray(table.embeddings, dtype=np.float64)
    users = np.asarray(ctx.bundle.read_factors().user_factors, dtype=np.float64)
    signal = has_signal(users)
    # Shoppers without signal (all-zero vectors) would pile up on one point of the map.
    layout = style_map_layout(users[signal], style_emb)
    user_ids = ctx.bundle.read_ids("user")
    labels = pd.Categorical(seg.segment_of(user_ids), categories=seg.segment_ids).codes
    names = ctx.bundle.read_table(STYLES).set_index("style_id")["name"]
    style_names = [str(names.get(s, s)) for s in style_ids]
    style_biplot(out / "map.png", layout, labels[signal], seg.segment_ids, style_names,
                 "Shoppers (coloured by segment) and library styles")
    sec.figures.append(("map.png", "PCA biplot of the shoppers' predicted style preferences: "
                                   "dots are shoppers, large dots segment centres, arrows styles"))
    sec.paragraphs.append(
        "Each shopper is placed by the preference the model predicts for every library style, "
        "relative to the average shopper; each style is an arrow in the same projection. "
        "Shoppers in the direction of an arrow like that style more than average. "
        f"The two axes explain {layout.explained.sum():.0%} of the variance."
    )
    favourite, no_signal = predicted_favourites(users, style_emb)
    total = max(len(user_ids), 1)
    if no_signal:
        sec.paragraphs.append(
            f"{no_signal} of {len(user_ids)} shoppers ({no_signal / total:.0%}) have no signal: "
            "no event the model could learn a taste from, so an all-zero preference vector. "
            "They have no predicted favourite, are left off the map (its legend counts the "
            "shoppers shown) and get the default segment; the table counts them on their own "
            "row."
        )
    used = {s: [c["segment_id"] for c in conditions if s in c["style_ids"]] for s in style_ids}
    rows: list[list[Any]] = [
        [s, n, int(f), f / total, ", ".join(used[s]) or "—"]
        for s, n, f in zip(style_ids, style_names, favourite, strict=True)
    ]
    default = ctx.metrics.get("segment", {}).get("default_segment")
    rows.append(["—", NO_SIGNAL, no_signal, no_signal / total,
                 f"default ({default})" if default else "default"])
    sec.tables.append(Table(
        ["style", "name", "shoppers whose predicted favourite", "share", "segments blending it"],
        rows,
    ))
    return sec


def _renders(ctx: RunContext) -> Section:
    r = ctx.metrics.get("render", {})
    sec = Section("renders", "Renders")
    sec.tables.append(Table(["", "count"], [
        ["items rendered for", r.get("items", 0)], ["segment conditions", r.get("conditions", 0)],
        ["renders needed", r.get("needed", 0)], ["rendered tonight", r.get("rendered", 0)],
        ["reused from the cache", r.get("reused", 0)], ["items that failed", r.get("failed_items", 0)],
    ]))
    fidelity = _served_fidelity(ctx)
    if fidelity.size:
        sec.paragraphs.append(
            f"Product colour fidelity over the {fidelity.size} renders this run serves: mean "
            f"CIEDE2000 inside the product mask {fidelity.mean():.2f} on average, "
            f"{fidelity.max():.2f} at worst; {int((fidelity > 2.3).sum())} above the "
            "just-noticeable difference of 2.3."
        )
    edges = _served_param(ctx, "rim")
    if edges.size and fidelity.size:
        sec.paragraphs.append(
            f"Product edges over the {edges.size} renders with a recorded rim: backdrop left "
            f"unchanged 3-10 px outside the product where the scene would differ from it, in "
            f"excess of the background's share, "
            f"median {np.median(edges):.3f}, worst {edges.max():.3f}; product CIEDE2000 median "
            f"{np.median(fidelity):.2f}, worst {fidelity.max():.2f}."
        )
    return sec


def _served_param(ctx: RunContext, name: str) -> np.ndarray:
    """A per-render figure recorded in the render parameters (reused renders included)."""
    renders = ctx.store.renders_for_run(ctx.run_id)
    values = [p.get(name) for p in renders.get("params", []) if isinstance(p, dict)]
    return np.asarray([v for v in values if v is not None], dtype=np.float64)


def _served_fidelity(ctx: RunContext) -> np.ndarray:
    """Product Delta-E recorded with each render the run links (reused ones included)."""
    renders = ctx.store.renders_for_run(ctx.run_id)
    values = [p.get("product_delta_e") for p in renders.get("params", []) if isinstance(p, dict)]
    return np.asarray([v for v in values if v is not None], dtype=np.float64)


def _timings(ctx: RunContext, out: Path) -> Section:
    sec = Section("timings", "Time per stage")
    # The report stage is the one running now: its own time is not known yet.
    done = [s for s in STAGES if s != "report" and "seconds" in ctx.metrics.get(s, {})]
    secs = [float(ctx.metrics[s]["seconds"]) for s in done]
    rows: list[list[Any]] = [[s, t] for s, t in zip(done, secs, strict=True)]
    sec.tables.append(Table(["stage", "seconds"], rows + [["total", sum(secs)]]))
    bar_chart(out / "timings.png", done, secs, "Time per stage", "seconds")
    sec.figures.append(("timings.png", "wall-clock seconds per stage (this run)"))
    return sec


def run(ctx: RunContext) -> dict[str, Any]:
    """Write the report for this run and return its path."""
    out = report_dir(ctx)
    # Segment sizes come from the assignment, which lives in the store only.
    seg = ctx.bundle.read_segmentation(ctx.store.read_user_segments(ctx.run_id))
    if seg is None:
        raise FileNotFoundError(f"run bundle {ctx.run_dir}: missing segmentation")
    sizes = seg.sizes
    conditions = [{**c, "n_users": sizes.get(str(c["segment_id"]), 0)}
                  for c in ctx.bundle.read_conditions()]
    builders = [
        lambda: _data_quality(ctx), lambda: _model_metrics(ctx, out),
        lambda: _segments(ctx, out, conditions), lambda: _map(ctx, out, conditions, seg),
        lambda: _renders(ctx), lambda: controls_section(ctx, out, conditions),
        lambda: _timings(ctx, out),
    ]
    # A bar on a terminal (the segment sheets decode renders: seconds on a large K).
    sections = [build() for build in tqdm(builders, desc="report", unit="section",
                                          disable=None, file=sys.stderr, leave=False)]
    path = write_html(out, f"stylerec nightly report — run {ctx.run_id}", sections)
    return {"report": str(path), "figures": len(list(out.glob("*.png")))}

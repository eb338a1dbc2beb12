"""Stage 5, segment: group shoppers by style taste; give each segment its render condition.

Segments are matched to the served run's segments, so ids stay stable and a
segment whose blend did not move keeps its condition, and with it every
cached render.  The condition code is the weighted blend of its library
styles' codes (:meth:`stylizer.StyleSpace.blend`), hashed for the render keys.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pipelines.cache import condition_hash
from pipelines.controls import NightControls, item_categories, load_previous_conditions
from pipelines.runner import RunContext
from pipelines.stages.artifacts import (
    CONDITIONS,
    ITEMS,
    MODEL,
    SEGMENTATION,
    STYLE_EMBEDDINGS,
    USER_MAP,
    load_codes,
)
from recsys.interactions import IdMap
from recsys.model import StylePreferenceModel
from recsys.segments import Segmentation, UserSegmenter
from stylizer.style_space import StyleSpace


def run(ctx: RunContext) -> dict[str, Any]:
    """Segment users, store assignments and conditions, write ``conditions.json``."""
    seg_cfg = ctx.config.segments
    model = StylePreferenceModel.load(ctx.run_dir / MODEL)
    user_ids = [str(u) for u in IdMap.load(ctx.run_dir / USER_MAP).ids]
    codes = load_codes(ctx.run_dir)
    style_ids = [str(s) for s in codes["style_ids"]]
    with np.load(ctx.run_dir / STYLE_EMBEDDINGS, allow_pickle=False) as z:
        style_emb = z["embeddings"]
    # Merchandising controls (pipelines.controls): disabled styles never enter a condition.
    controls = NightControls.for_run(ctx)
    usable = [n for n, s in enumerate(style_ids) if controls.usable(s)]
    if not usable:
        raise ValueError("every style of the library is disabled or out of its dates tonight")

    previous = None
    prev_dir = ctx.previous_run_dir
    if prev_dir is not None and (prev_dir / SEGMENTATION / "segments.npz").is_file():
        previous = Segmentation.load(prev_dir / SEGMENTATION)
    k = min(seg_cfg.k, len(user_ids))
    segmenter = UserSegmenter(n_segments=k, n_blend=min(seg_cfg.n_blend, len(usable)),
                              seed=ctx.config.model.seed)
    segmenter.fit(model.user_factors_, user_ids, style_emb[usable],
                  [style_ids[n] for n in usable], previous=previous)
    seg = segmenter.to_segmentation()
    seg.save(ctx.run_dir / SEGMENTATION)

    raw = dict(zip(style_ids, codes["style_codes"], strict=True))
    sizes = seg.sizes
    conditions: list[dict[str, Any]] = []
    for sid in seg.segment_ids:
        cond = seg.conditions[sid]
        code = StyleSpace.blend(np.stack([raw[s] for s in cond.style_ids]), list(cond.weights))
        conditions.append({
            "segment_id": sid,
            "style_ids": list(cond.style_ids),
            "weights": [float(w) for w in cond.weights],
            "code": [float(x) for x in code],
            "condition_hash": condition_hash(code),
            "n_users": int(sizes.get(sid, 0)),
        })
    centroids = dict(zip(segmenter.segment_ids_, segmenter.centroids_, strict=True))
    displaced = controls.displaced(conditions, segmenter, centroids, style_emb, style_ids)
    acted = controls.apply(
        conditions, segmenter=segmenter, centroids=centroids, style_emb=style_emb,
        style_ids=style_ids, raw_codes=raw, blend=StyleSpace.blend, hasher=condition_hash,
        categories=item_categories(ctx.run_dir / ITEMS),
        previous=load_previous_conditions(prev_dir, CONDITIONS),
    )
    (ctx.run_dir / CONDITIONS).write_text(json.dumps(conditions, indent=1))
    ctx.store.write_user_segments(ctx.run_id, seg.assignment[["user_id", "segment_id"]])
    ctx.store.write_segment_conditions(ctx.run_id, [  # the store keeps the segment's own blend
        {k: c[k] for k in ("segment_id", "style_ids", "weights", "code", "condition_hash",
                           "n_users")} for c in conditions])
    kept = [bool(x) for x in getattr(segmenter, "kept_condition_", [])]
    return {
        "segments": len(conditions),
        "sizes": {c["segment_id"]: c["n_users"] for c in conditions},
        "default_segment": seg.default_segment,
        "conditions_kept": int(sum(kept)),
        # Shoppers with an all-zero vector (nothing to learn a taste from): the default
        # segment gets them, and the report counts them as "no signal", not as a style.
        "no_signal_users": int((np.linalg.norm(model.user_factors_, axis=1) == 0).sum()),
        "matched_previous": previous is not None,
        "controls": {**acted, "excluded_styles": controls.excluded(style_ids),
                     "conditions_displaced": displaced},
    }

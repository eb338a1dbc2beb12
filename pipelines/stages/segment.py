"""Stage 5, segment: group shoppers by style taste; give each segment its render condition.

Segments are matched to the served run's segments, so ids stay stable and a
segment whose blend did not move keeps its condition, and with it every
cached render.  The condition code is the weighted blend of its library
styles' codes (:meth:`stylizer.StyleSpace.blend`), hashed for the render keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.cache import condition_hash
from pipelines.context import RunContext
from pipelines.controls import NightControls, item_categories, previous_conditions
from recsys.run_bundle import ITEMS
from recsys.segments import UserSegmenter
from stylizer.style_space import StyleSpace


def run(ctx: RunContext) -> dict[str, Any]:
    """Segment users; the assignment goes to the store, segments and conditions to the bundle."""
    seg_cfg = ctx.config.segments
    bundle = ctx.bundle
    users = bundle.read_factors().user_factors  # numpy: the stage needs only the vectors
    user_ids = bundle.read_ids("user")
    codes = bundle.read_codes()
    style_ids = codes.style_ids
    style_emb = bundle.read_style_embeddings().embeddings
    # Merchandising controls (pipelines.controls): disabled styles never enter a condition.
    controls = NightControls.for_run(ctx)
    usable = [n for n, s in enumerate(style_ids) if controls.usable(s)]
    if not usable:
        raise ValueError("every style of the library is disabled or out of its dates tonight")

    previous = None
    prev_bundle = ctx.previous_bundle
    if prev_bundle is not None and ctx.previous_run_id is not None:
        previous = prev_bundle.read_segmentation(
            ctx.store.read_user_segments(ctx.previous_run_id))
    k = min(seg_cfg.k, len(user_ids))
    segmenter = UserSegmenter(n_segments=k, n_blend=min(seg_cfg.n_blend, len(usable)),
                              seed=ctx.config.model.seed)
    segmenter.fit(users, user_ids, style_emb[usable],
                  [style_ids[n] for n in usable], previous=previous)
    seg = segmenter.to_segmentation()

    raw = dict(zip(style_ids, codes.style_codes, strict=True))
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
        })
    centroids = dict(zip(segmenter.segment_ids_, segmenter.centroids_, strict=True))
    displaced = controls.displaced(conditions, segmenter, centroids, style_emb, style_ids)
    acted = controls.apply(
        conditions, segmenter=segmenter, centroids=centroids, style_emb=style_emb,
        style_ids=style_ids, raw_codes=raw, blend=StyleSpace.blend, hasher=condition_hash,
        categories=item_categories(bundle.read_table(ITEMS)),
        previous=previous_conditions(prev_bundle),
    )
    bundle.write_segments(seg, conditions)
    ctx.store.write_user_segments(ctx.run_id, seg.assignment[["user_id", "segment_id"]])
    kept = [bool(x) for x in getattr(segmenter, "kept_condition_", [])]
    return {
        "segments": len(conditions),
        "sizes": {sid: int(sizes.get(sid, 0)) for sid in seg.segment_ids},
        "default_segment": seg.default_segment,
        "conditions_kept": int(sum(kept)),
        # Shoppers with an all-zero vector (nothing to learn a taste from): the default
        # segment gets them, and the report counts them as "no signal", not as a style.
        "no_signal_users": int((np.linalg.norm(users, axis=1) == 0).sum()),
        "matched_previous": previous is not None,
        "controls": {**acted, "excluded_styles": controls.excluded(style_ids),
                     "conditions_displaced": displaced},
    }

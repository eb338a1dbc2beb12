"""Stage 4, index: FAISS indices over item vectors and style embeddings; top styles per user.

``style_embeddings.npz`` is what segmentation, the report and serving read;
``top_styles.parquet`` what analysts read (each user's preferred library
styles).  The two FAISS indices are written for offline use: the serving
snapshot builds its own exact index over ``[v_i, b_i]`` at load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.context import RunContext
from pipelines.stages.common import whitened_codes
from recsys.index import ItemIndex, StyleIndex
from recsys.run_bundle import TOP_STYLES


def run(ctx: RunContext) -> dict[str, Any]:
    """Build and save both indices; write every user's top styles."""
    bundle = ctx.bundle
    model = bundle.load_model()
    user_ids = bundle.read_ids("user")
    item_ids = bundle.read_ids("item")
    codes, _, style_w = whitened_codes(bundle)
    style_ids = codes.style_ids
    users = np.asarray(model.user_factors_, dtype=np.float32)
    default = users.mean(axis=0)

    style_emb = np.asarray(model.style_embeddings(style_w), dtype=np.float32)
    bundle.write_style_embeddings(style_ids, style_emb)
    style_index = StyleIndex().fit(style_emb, style_ids, users, user_ids, default_vector=default)
    bundle.write_style_index(style_index)
    k = min(ctx.config.segments.top_styles, len(style_ids))
    top_ids, top_scores = style_index.top_styles(user_ids, k)
    bundle.write_table(TOP_STYLES, pd.DataFrame({
        "user_id": np.repeat(user_ids, k),
        "rank": np.tile(np.arange(1, k + 1), len(user_ids)),
        "style_id": top_ids.ravel().astype(str),
        "score": top_scores.ravel(),
    }))

    item_index = ItemIndex().fit(
        np.asarray(model.item_factors_, dtype=np.float32), item_ids,
        popularity=model.popularity_scores(),
    )
    bundle.write_item_index(item_index)
    counts = pd.Series(top_ids[:, 0].astype(str)).value_counts()
    return {
        "users": len(user_ids),
        "items": len(item_ids),
        "styles": len(style_ids),
        "top_style_share": {s: round(float(n) / len(user_ids), 4) for s, n in counts.items()},
    }

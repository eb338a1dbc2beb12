"""Stage 4, index: FAISS indices over item vectors and style embeddings; top styles per user.

The indices are what the serving API loads; ``top_styles.parquet`` is what
analysts and the report read (each user's preferred library styles).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.runner import RunContext
from pipelines.stages.artifacts import (
    ITEM_INDEX,
    ITEM_MAP,
    MODEL,
    STYLE_EMBEDDINGS,
    STYLE_INDEX,
    USER_MAP,
)
from pipelines.stages.train import whitened_codes
from recsys.index import ItemIndex, StyleIndex
from recsys.interactions import IdMap
from recsys.model import StylePreferenceModel

TOP_STYLES = "top_styles.parquet"


def run(ctx: RunContext) -> dict[str, Any]:
    """Build and save both indices; write every user's top styles."""
    model = StylePreferenceModel.load(ctx.run_dir / MODEL)
    user_ids = [str(u) for u in IdMap.load(ctx.run_dir / USER_MAP).ids]
    item_ids = [str(i) for i in IdMap.load(ctx.run_dir / ITEM_MAP).ids]
    codes, _, style_w = whitened_codes(ctx.run_dir)
    style_ids = [str(s) for s in codes["style_ids"]]
    users = np.asarray(model.user_factors_, dtype=np.float32)
    default = users.mean(axis=0)

    style_emb = np.asarray(model.style_embeddings(style_w), dtype=np.float32)
    np.savez(ctx.run_dir / STYLE_EMBEDDINGS, style_ids=np.asarray(style_ids, dtype=str),
             embeddings=style_emb)
    style_index = StyleIndex().fit(style_emb, style_ids, users, user_ids, default_vector=default)
    style_index.save(ctx.run_dir / STYLE_INDEX)
    k = min(ctx.config.segments.top_styles, len(style_ids))
    top_ids, top_scores = style_index.top_styles(user_ids, k)
    pd.DataFrame({
        "user_id": np.repeat(user_ids, k),
        "rank": np.tile(np.arange(1, k + 1), len(user_ids)),
        "style_id": top_ids.ravel().astype(str),
        "score": top_scores.ravel(),
    }).to_parquet(ctx.run_dir / TOP_STYLES, index=False)

    item_index = ItemIndex().fit(
        np.asarray(model.item_factors_, dtype=np.float32), item_ids,
        popularity=model.popularity_scores(),
    )
    item_index.save(ctx.run_dir / ITEM_INDEX)
    counts = pd.Series(top_ids[:, 0].astype(str)).value_counts()
    return {
        "users": len(user_ids),
        "items": len(item_ids),
        "styles": len(style_ids),
        "top_style_share": {s: round(float(n) / len(user_ids), 4) for s, n in counts.items()},
    }

"""Stage 4, index: style embeddings and every user's top styles.

``style_embeddings.npz`` is what segmentation and serving read;
``top_styles.parquet`` what analysts and the report read (each user's preferred
library styles).  Both come from the factors core (:class:`recsys.factors.StyleFactors`).

This stage used to write FAISS indices (``item_index/``, ``style_index/``) that
no production code read.  Measured at 1M users x 100k items
(``benchmarks/bench_recommend_faiss.py``, ``docs/benchmarks.md``): the nightly's
item index ranks without the item bias (recall@10 of the model's answer ~0.25)
and costs ~24 ms a call with seen-item exclusion, so serving could not use it
as written; the service ranks exactly with the core instead.  The stage no longer
writes them; runs that have them stay readable (``RunBundle.read_item_index``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.context import RunContext
from pipelines.stages.common import whitened_codes
from recsys.run_bundle import TOP_STYLES


def run(ctx: RunContext) -> dict[str, Any]:
    """Write the style embeddings and every user's top styles (exact, in user chunks)."""
    bundle = ctx.bundle
    factors = bundle.read_factors()
    user_ids = bundle.read_ids("user")
    item_ids = bundle.read_ids("item")
    codes, _, style_w = whitened_codes(bundle)
    style_ids = [str(s) for s in codes.style_ids]

    style_emb = np.asarray(factors.embed_codes(style_w), dtype=np.float32)
    bundle.write_style_embeddings(style_ids, style_emb)
    k = min(ctx.config.segments.top_styles, len(style_ids))
    top_rows, top_scores = factors.top_by_embedding(style_emb, k)
    top_ids = np.asarray(style_ids, dtype=object)[top_rows]
    bundle.write_table(TOP_STYLES, pd.DataFrame({
        "user_id": np.repeat(user_ids, k),
        "rank": np.tile(np.arange(1, k + 1), len(user_ids)),
        "style_id": top_ids.ravel().astype(str),
        "score": top_scores.ravel(),
    }))
    counts = pd.Series(top_ids[:, 0].astype(str)).value_counts()
    return {
        "users": len(user_ids),
        "items": len(item_ids),
        "styles": len(style_ids),
        "top_style_share": {s: round(float(n) / len(user_ids), 4) for s, n in counts.items()},
    }

"""Synthetic serving runs: a complete, published run bundle from random vectors.

Why: the serving tests need small runs whose every number is known (so that
they can tell which run an answer came from), and the latency benchmark needs
a run with a million users; training a real model for either would take
minutes and test the trainer, not the service.  The run is written with
:class:`recsys.run_bundle.RunBundle`, as the nightly writes its runs, and
registered in the store exactly like a nightly run (run params
``run_dir``/``render_root``, user segments, renders linked to the run), so the
service's load path is the production one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.run_bundle import ITEMS, RunBundle
from recsys.segments import Segmentation, SegmentCondition
from recsys.serving.bundle import write_model


@dataclass(frozen=True)
class SyntheticRun:
    """What :func:`make_run` wrote: ids, the raw arrays and where the files are."""

    run_id: str
    run_dir: Path
    render_root: str
    user_ids: list[str]
    item_ids: list[str]  # the model's items
    cold_item_ids: list[str]  # catalogue items outside the model (scored from codes)
    user_factors: np.ndarray
    item_factors: np.ndarray
    item_bias: np.ndarray
    segment_of_user: np.ndarray  # segment index per user
    segment_ids: list[str]
    rendered: np.ndarray  # bool (n_items + n_cold, n_segments)


def make_run(
    store: Any,
    root: str | Path,
    *,
    n_users: int = 200,
    n_items: int = 300,
    factors: int = 16,
    n_segments: int = 3,
    n_styles: int = 6,
    code_dim: int = 8,
    n_cold: int = 0,
    cold_with_code: int | None = None,
    seen_per_user: int = 2,
    render_fraction: float = 1.0,
    no_image_items: int = 0,
    seed: int = 0,
    tag: str = "r",
    publish: bool = True,
) -> SyntheticRun:
    """Write a run bundle under ``root/tag`` and record (and publish) it in ``store``.

    ``n_cold`` catalogue items are outside the model; the first
    ``cold_with_code`` of them (default all) have an image code in
    ``codes.npz``.  ``render_fraction`` of the items get a render per segment
    (the same items in every segment); the last ``no_image_items`` model
    items have no image at all.  Image and render URIs contain ``tag`` so that
    a test can tell two runs apart by any image.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(root) / tag
    run_dir.mkdir(parents=True, exist_ok=True)
    render_root = str(Path(root) / f"renders-{tag}")
    users = [f"u{n:07d}" for n in range(n_users)]
    items = [f"i{n:06d}" for n in range(n_items)]
    cold = [f"c{n:06d}" for n in range(n_cold)]
    scale = np.float32(1.0 / np.sqrt(factors))
    P = rng.standard_normal((n_users, factors), dtype=np.float32) * scale
    Q = rng.standard_normal((n_items, factors), dtype=np.float32) * scale
    bias = (rng.standard_normal(n_items, dtype=np.float32) * 0.1).astype(np.float32)
    counts = np.floor(rng.pareto(1.2, n_items) * 5).astype(np.float32)
    seen = None
    if seen_per_user:
        cols = rng.integers(0, n_items, size=(n_users, seen_per_user))
        cols.sort(axis=1)
        seen = sp.csr_matrix(
            (np.ones(cols.size, np.float32), cols.ravel(),
             np.arange(0, cols.size + 1, seen_per_user)), shape=(n_users, n_items))
        seen.sum_duplicates()

    # Codes: whitening, the model's standardisation and W, as the train stage fits them.
    W = (rng.standard_normal((code_dim, factors), dtype=np.float32) * 0.05).astype(np.float32)
    wmean = rng.standard_normal(code_dim).astype(np.float32)
    wmat = np.eye(code_dim, dtype=np.float32) * 0.5
    cmean = np.zeros(code_dim, np.float32)
    cscale = 1.0
    bundle = RunBundle.create(run_dir)
    write_model(run_dir, user_ids=users, item_ids=items, user_factors=P, item_factors=Q,
                  item_bias=bias, item_popularity=counts, seen=seen, W=W,
                  code_mean=cmean, code_scale=cscale)
    style_ids = [f"s{n:03d}" for n in range(n_styles)]
    style_raw = rng.standard_normal((n_styles, code_dim)).astype(np.float32)
    embed = bundle.read_factors().with_whitening(wmean, wmat).embed_raw_codes
    bundle.write_style_embeddings(style_ids, embed(style_raw) * 20)
    bundle.write_whitening(wmean, wmat)
    n_coded = n_cold if cold_with_code is None else min(cold_with_code, n_cold)
    item_raw = rng.standard_normal((n_items + n_coded, code_dim)).astype(np.float32)
    bundle.write_codes(items + cold[:n_coded], item_raw, style_ids, style_raw)

    catalogue = items[: n_items - no_image_items] + cold
    bundle.write_table(ITEMS, pd.DataFrame({
        "item_id": catalogue,
        "image_uri": [f"{tag}/img/{i}.jpg" for i in catalogue],
        "image_hash": [f"{tag}{i}" for i in catalogue],
    }))

    seg_ids = [f"seg{s}" for s in range(n_segments)]
    user_seg = rng.integers(0, n_segments, n_users).astype(np.int32)
    sizes = np.bincount(user_seg, minlength=n_segments)
    conditions = []
    for s, sid in enumerate(seg_ids):
        pick = rng.choice(n_styles, size=min(2, n_styles), replace=False)
        conditions.append({
            "segment_id": sid,
            "style_ids": [style_ids[j] for j in pick],
            "weights": [0.7, 0.3][: len(pick)],
            "code": style_raw[pick].mean(axis=0),
            "condition_hash": f"{tag}h{s}",
        })
    # The segmentation (default segment: the largest, as the segmenter picks it); the
    # assignment goes to the store below, the one place it lives.
    centroids = np.stack([P[user_seg == s].sum(axis=0) if sizes[s] else np.ones(factors)
                          for s in range(n_segments)]).astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    bundle.write_segments(Segmentation(
        segment_ids=seg_ids, centroids=centroids,
        conditions={c["segment_id"]: SegmentCondition.from_dict(c) for c in conditions},
        assignment=pd.DataFrame({"user_id": users, "segment_id": [seg_ids[s] for s in user_seg]}),
        default_segment=seg_ids[int(np.argmax(sizes))], next_index=n_segments,
    ), conditions)

    all_items = items + cold
    n_render = int(round(render_fraction * len(all_items)))
    render_rows = np.sort(rng.choice(len(all_items), size=n_render, replace=False))
    rendered = np.zeros((len(all_items), n_segments), dtype=bool)
    rendered[render_rows] = True

    run_id = store.create_run({"run_dir": str(run_dir.resolve()), "render_root": render_root,
                               "synthetic": True}, stages=["build"])
    store.write_user_segments(run_id, zip(users, (seg_ids[s] for s in user_seg), strict=True))
    if n_render:
        def render_rows_iter() -> Any:
            for r in render_rows.tolist():
                for s in range(n_segments):
                    key = f"{tag}{r:07d}{s:03d}"
                    yield {"key": key, "item_id": all_items[r],
                           "condition_hash": f"{tag}h{s}", "uri": f"{key[:2]}/{key}.webp"}

        store.add_renders(run_id, render_rows_iter())
    store.set_stage(run_id, "build", "done")
    if publish:
        store.publish(run_id)
    return SyntheticRun(run_id, run_dir, render_root, users, items, cold, P, Q, bias,
                        user_seg, seg_ids, rendered)

"""Benchmark: one user's top-k at 1M users x 100k items -- the factors core beside FAISS.

Why: the nightly wrote FAISS indices (``item_index/``, ``style_index/``) that no
production code read, while serving built its own FAISS index at load.  Issue 14
asks to either serve them or stop writing them, decided by recommend latency at
1M users x 100k items.  This measures, per call (one user, k = 10, the user's
seen items excluded, exact answers compared):

1. ``core``: :meth:`recsys.factors.StyleFactors.recommend_user` -- brute force,
   one mat-vec ``V p + b`` over the 100k items and ``argpartition``.
2. ``faiss_flat_vb``: an exact FAISS ``IndexFlatIP`` over ``[v_i, b_i]`` queried
   with ``[p_u, 1]`` for ``k + |seen|`` neighbours, then seen items dropped (what
   the service did before this issue).
3. ``nightly_item_index``: the nightly's ``ItemIndex`` (``recsys.index``, saved and
   loaded as the index stage wrote it; flat at 100k items), ``search_rows`` with
   the seen items excluded.  It ranks by ``p_u . v_i`` without the item bias, so
   its answers are not the model's: recall@10 against the exact answer is given.
4. ``faiss_ivf_vb``: an IVF index over ``[v_i, b_i]`` (what ``"auto"`` builds
   above 100k items), for the latency an approximate index would buy, with its recall.

Single-threaded (BLAS and OpenMP held to one thread, as a serving process runs
its per-request work).  Data: item vectors around 256 random directions, users
drawn the same way, biases ~ N(0, 1), 3 seen items per user; factors float32.

Run (heavy, ~1.3 GB resident; share the CPU)::

    flock /tmp/stylerec-heavy.lock .venv/bin/python benchmarks/bench_recommend_faiss.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from recsys.factors import StyleFactors
from recsys.index import ItemIndex


def _data(n_users: int, n_items: int, dim: int, seed: int) -> StyleFactors:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    items = centres[rng.integers(0, 256, n_items)] + 0.7 * rng.standard_normal(
        (n_items, dim), dtype=np.float32)
    users = np.empty((n_users, dim), np.float32)
    for start in range(0, n_users, 200_000):  # bounded temporaries
        n = min(200_000, n_users - start)
        users[start:start + n] = 0.1 * (centres[rng.integers(0, 256, n)]
                                         + rng.standard_normal((n, dim), dtype=np.float32))
    seen = rng.integers(0, n_items, (n_users, 3)).astype(np.int32)
    seen.sort(axis=1)
    return StyleFactors(
        user_factors=users, item_factors=items,
        item_bias=rng.standard_normal(n_items).astype(np.float32),
        item_popularity=rng.integers(0, 1000, n_items).astype(np.float64), W=None,
        seen_indptr=np.arange(0, 3 * n_users + 1, 3, dtype=np.int64),
        seen_indices=seen.ravel(),
    )


def _timed(fn, users: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:  # noqa: ANN001
    out, ms = [], np.empty(len(users))
    for n, u in enumerate(users.tolist()):
        t0 = time.perf_counter()
        out.append(fn(u))
        ms[n] = (time.perf_counter() - t0) * 1e3
    return out, ms


def _recall(got: list[np.ndarray], exact: list[np.ndarray]) -> float:
    return float(np.mean([len(np.intersect1d(g, e)) / max(len(e), 1)
                          for g, e in zip(got, exact, strict=True)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    args = ap.parse_args()
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    f = _data(args.users, args.items, args.dim, args.seed)
    build_data_s = time.perf_counter() - t0
    rng = np.random.default_rng(args.seed + 1)
    users = rng.choice(args.users, args.calls, replace=False)
    k = args.k
    res: dict[str, object] = {"users": args.users, "items": args.items, "dim": args.dim,
                              "calls": args.calls, "k": k, "data_seconds": round(build_data_s, 1)}
    aug = np.hstack([f.item_factors, f.item_bias[:, None]]).astype(np.float32)

    with threadpool_limits(1):
        def core(u: int) -> np.ndarray:
            return f.recommend_user(u, k, exclude=f.seen_items(u))[0]

        exact, ms_core = _timed(core, users)

        t0 = time.perf_counter()
        flat = faiss.IndexFlatIP(args.dim + 1)
        flat.add(aug)
        build_flat = time.perf_counter() - t0

        def flat_vb(u: int) -> np.ndarray:
            seen = f.seen_items(u)
            q = np.append(f.user_factors[u], np.float32(1.0))[None, :]
            _, lab = flat.search(q, k + len(seen))
            lab = lab[0][~np.isin(lab[0], seen)]
            return lab[:k]

        got_flat, ms_flat = _timed(flat_vb, users)

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            idx = ItemIndex(use_gpu=False).fit(f.item_factors, [str(i) for i in range(args.items)],
                                               popularity=f.popularity_scores)
            idx.save(Path(tmp) / "item_index")
            build_nightly = time.perf_counter() - t0
            size = sum(p.stat().st_size for p in (Path(tmp) / "item_index").iterdir())
            t0 = time.perf_counter()
            idx = ItemIndex.load(Path(tmp) / "item_index")
            load_nightly = time.perf_counter() - t0
        import scipy.sparse as sp

        def nightly(u: int) -> np.ndarray:
            seen = f.seen_items(u)
            ex = sp.csr_matrix((np.ones(len(seen), np.int8), seen, [0, len(seen)]),
                               shape=(1, args.items))
            lab, _ = idx.search_rows(f.user_factors[u], k, ex)
            return lab[0]

        got_nightly, ms_nightly = _timed(nightly, users)

        t0 = time.perf_counter()
        nlist = int(4 * np.sqrt(args.items))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim + 1), args.dim + 1, nlist,
                                 faiss.METRIC_INNER_PRODUCT)
        ivf.train(aug)
        ivf.add(aug)
        ivf.nprobe = max(16, nlist // 8)
        build_ivf = time.perf_counter() - t0

        def ivf_vb(u: int) -> np.ndarray:
            seen = f.seen_items(u)
            q = np.append(f.user_factors[u], np.float32(1.0))[None, :]
            _, lab = ivf.search(q, k + len(seen))
            lab = lab[0][(lab[0] >= 0) & ~np.isin(lab[0], seen)]
            return lab[:k]

        got_ivf, ms_ivf = _timed(ivf_vb, users)

    def fig(ms: np.ndarray, got: list[np.ndarray] | None) -> dict[str, float]:
        out = {"p50_ms": round(float(np.percentile(ms, 50)), 3),
               "p99_ms": round(float(np.percentile(ms, 99)), 3),
               "mean_ms": round(float(ms.mean()), 3)}
        if got is not None:
            out["recall@k_vs_exact"] = round(_recall(got, exact), 4)
        return out

    res["core"] = fig(ms_core, None)
    res["faiss_flat_vb"] = {**fig(ms_flat, got_flat), "build_s": round(build_flat, 2)}
    res["nightly_item_index"] = {**fig(ms_nightly, got_nightly),
                                 "build_and_save_s": round(build_nightly, 2),
                                 "load_s": round(load_nightly, 2), "bytes": size}
    res["faiss_ivf_vb"] = {**fig(ms_ivf, got_ivf), "build_s": round(build_ivf, 2),
                           "nlist": nlist, "nprobe": int(ivf.nprobe)}
    res["p50_ratio_core_over_flat"] = round(res["core"]["p50_ms"] / res["faiss_flat_vb"]["p50_ms"],
                                            3)
    res["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    res["loadavg"] = os.getloadavg()
    print(json.dumps(res, indent=None if args.json else 2))


if __name__ == "__main__":
    main()

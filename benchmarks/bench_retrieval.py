"""Benchmark: top styles for 1M users and segmentation of 1M users, each beside a peer.

What it shows:

1. ``recsys.StyleIndex.top_styles(user_ids, k=5)`` over 10k style embeddings
   for 1M users (64-dim float32), *including* the id lookups of the user table
   and the id strings of the answer.  Peer: brute-force numpy — chunked
   ``users @ styles.T`` then ``argpartition`` + sort of the top k, returning
   rows only.  The two answers are checked to agree (scores equal).
2. ``recsys.UserSegmenter(n_segments=16).fit`` on 1M x 64 (spherical FAISS
   k-means, 25 iterations, 3 restarts, assignment of every user, conditions of
   3 blended styles from the 10k library).  FAISS k-means trains on a random
   subsample of ``max_points_per_centroid * K`` users — FAISS's default 256,
   i.e. 4,096 of the 1M users for K=16 — and then assigns all users; the run is
   repeated with ``max_points_per_centroid=None`` (train on all 1M users).
   Peer: scikit-learn ``MiniBatchKMeans(16, n_init=3, max_iter=25)`` on the
   same L2-normalised vectors (it visits all the data in mini-batches).
   Quality is reported as the mean cosine of users to their segment centroid.

Data: users drawn around 64 random taste directions plus noise (random data,
with some structure so that the segmentation quality numbers mean something);
style embeddings i.i.d. normal.

Run (heavy: share the CPU politely)::

    flock /tmp/stylerec-cpu.lock .venv/bin/python benchmarks/bench_retrieval.py

``--users/--styles/--dim`` change the sizes; ``--quick`` runs 100k users.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from recsys.index import StyleIndex, faiss_threads
from recsys.segments import UserSegmenter


def _data(n_users: int, n_styles: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    tastes = rng.normal(size=(64, dim)).astype(np.float32)
    users = tastes[rng.integers(0, 64, n_users)]
    users += rng.standard_normal(size=users.shape, dtype=np.float32)
    styles = rng.standard_normal(size=(n_styles, dim), dtype=np.float32)
    return users, styles


def numpy_top_k(
    users: np.ndarray, styles: np.ndarray, k: int, chunk: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """The peer: exact top-k by brute-force matmul and argpartition, chunked to bound memory."""
    rows = np.empty((users.shape[0], k), dtype=np.int64)
    scores = np.empty((users.shape[0], k), dtype=np.float32)
    st = np.ascontiguousarray(styles.T)
    for start in range(0, users.shape[0], chunk):
        s = users[start : start + chunk] @ st
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        ps = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-ps, axis=1)
        rows[start : start + chunk] = np.take_along_axis(part, order, axis=1)
        scores[start : start + chunk] = np.take_along_axis(ps, order, axis=1)
    return rows, scores


def _mean_cosine(units: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> float:
    c = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
    return float(np.einsum("ij,ij->i", units, c[labels]).mean())


def bench_top_styles(users: np.ndarray, styles: np.ndarray, k: int, skip_peer: bool) -> None:
    n_users, n_styles = users.shape[0], styles.shape[0]
    user_ids = [f"u{i:07d}" for i in range(n_users)]
    style_ids = [f"style-{i:05d}" for i in range(n_styles)]
    print(f"\n## top-{k} styles of {n_styles:,} for {n_users:,} users (dim {users.shape[1]})")
    t0 = time.perf_counter()
    index = StyleIndex(kind="flat").fit(styles, style_ids, user_vectors=users, user_ids=user_ids)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    ids, scores = index.top_styles(user_ids, k)
    t_ours = time.perf_counter() - t0
    print(f"stylerec StyleIndex (faiss flat IP): fit + user table {t_fit:.2f} s, "
          f"top_styles {t_ours:.2f} s, total {t_fit + t_ours:.2f} s")
    if skip_peer:
        return
    t0 = time.perf_counter()
    rows, ref = numpy_top_k(users, styles, k)
    t_peer = time.perf_counter() - t0
    print(f"peer numpy matmul + argpartition (chunked): {t_peer:.2f} s (rows only, no id strings)")
    diff = float(np.abs(scores - ref).max())
    same_ids = float((ids == np.asarray(style_ids, dtype=object)[rows]).mean())
    print(f"agreement: max |score diff| {diff:.2e}, identical ids {same_ids:.4%} (rest = ties)")
    print(f"ratio peer / stylerec: {t_peer / (t_fit + t_ours):.2f}x")


def bench_segments(users: np.ndarray, styles: np.ndarray, k: int, skip_peer: bool) -> None:
    n_users = users.shape[0]
    user_ids = [f"u{i:07d}" for i in range(n_users)]
    style_ids = [f"style-{i:05d}" for i in range(styles.shape[0])]
    units = users / np.linalg.norm(users, axis=1, keepdims=True)
    print(f"\n## segmentation of {n_users:,} users x {users.shape[1]} into K={k}")
    timings = {}
    for mppc in (256, None):
        t0 = time.perf_counter()
        seg = UserSegmenter(n_segments=k, n_blend=3, max_points_per_centroid=mppc, seed=0).fit(
            users, user_ids, styles, style_ids
        )
        dt = time.perf_counter() - t0
        timings[mppc] = dt
        trained = min(n_users, (mppc or n_users) * k) if mppc else n_users
        print(f"stylerec UserSegmenter (faiss k-means, max_points_per_centroid={mppc}, "
              f"trained on {trained:,} users, all {n_users:,} assigned): {dt:.2f} s, "
              f"mean cosine to centroid {_mean_cosine(units, seg.centroids_, seg.labels_):.4f}, "
              f"sizes {sorted(seg.sizes_.tolist())}")
    if skip_peer:
        return
    from sklearn.cluster import MiniBatchKMeans

    t0 = time.perf_counter()
    mbk = MiniBatchKMeans(n_clusters=k, n_init=3, max_iter=25, random_state=0).fit(units)
    t_peer = time.perf_counter() - t0
    print(f"peer sklearn MiniBatchKMeans(n_init=3, max_iter=25, batch_size=1024) fit: "
          f"{t_peer:.2f} s, mean cosine to centroid "
          f"{_mean_cosine(units, mbk.cluster_centers_, mbk.labels_):.4f}")
    print(f"ratio peer / stylerec (default subsample): {t_peer / timings[256]:.2f}x; "
          f"peer / stylerec (all users): {t_peer / timings[None]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--styles", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=5, help="top styles per user")
    ap.add_argument("--segments", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="100k users")
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--only", choices=["top", "segments"], default=None)
    args = ap.parse_args()
    n_users = 100_000 if args.quick else args.users
    print(f"machine: {os.cpu_count()} CPUs visible, faiss threads {faiss_threads()}")
    users, styles = _data(n_users, args.styles, args.dim)
    if args.only in (None, "top"):
        bench_top_styles(users, styles, args.k, args.skip_peer)
    if args.only in (None, "segments"):
        bench_segments(users, styles, args.segments, args.skip_peer)


if __name__ == "__main__":
    main()

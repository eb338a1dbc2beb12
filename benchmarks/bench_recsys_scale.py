"""Scale benchmark: the style-preference model against implicit ALS on a generated log.

Issue 4 asks that 1M users x 50k items x 20M events fit in <= 10 min on the
2-core machine with peak memory <= 8 GB.  This script generates such a log
(``benchmarks/bench_recsys_logs.py``), holds out one random positive of
``--eval-users`` users, and fits each model **in its own process** on the rest,
so that each peak RSS (the child's ``VmHWM``: data, model and optimizer state
together) belongs to one model only.  Then both are scored on the held-out
positives (NDCG@10, seen items excluded) and the ratios are printed.

The whole log is fitted; nothing is subsampled.  The model runs with its
defaults (early stopping on its own validation slice; it validates every 1,000
steps on a log this size).

    python benchmarks/bench_recsys_scale.py                      # 1M x 50k x 20M
    python benchmarks/bench_recsys_scale.py --users 100000 --items 20000 --events 2000000
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recsys_logs import generate_log  # noqa: E402


def _hold_out(X: sp.csr_matrix, n_users: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray,
                                                                    np.ndarray]:
    """Remove one random positive of ``n_users`` users with >= 2 positives."""
    rng = np.random.default_rng(seed)
    counts = np.diff(X.indptr)
    users = np.sort(rng.choice(np.flatnonzero(counts >= 2), size=n_users, replace=False))
    entry = X.indptr[users] + rng.integers(0, counts[users])
    items = X.indices[entry].astype(np.int64)
    train = X.copy()
    train.data[entry] = 0
    train.eliminate_zeros()
    return train, users, items


def _peak_rss_bytes() -> int:
    """High-water RSS of this process's own address space (``VmHWM``).

    Not ``ru_maxrss``: on Linux a child started by fork + exec inherits the
    parent's ``ru_maxrss`` at fork time, so it would report the parent's peak
    (the generated log) instead of the model's.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # pragma: no cover


def _fit_child(name: str, path: str, out: str, seed: int) -> None:
    """Fit one model on the saved matrix; write fit time and the eval users' top 10."""
    t_load = time.perf_counter()
    train = sp.load_npz(path).tocsr()
    with np.load(Path(path).with_name("heldout.npz")) as z:
        users = z["users"]
    load_s = time.perf_counter() - t_load
    t0 = time.perf_counter()
    if name == "stylerec":
        from recsys.model import StylePreferenceModel

        model = StylePreferenceModel(seed=seed, show_progress=False).fit(train)
        score = model.user_scores
        extra = {"best_epoch": model.best_epoch_,
                 "steps": model.history_[-1]["steps"], "rounds": len(model.history_)}
    else:
        from recsys.baselines import ALSRecommender

        model = ALSRecommender(seed=seed).fit(train)
        score = model.user_scores
        extra = {}
    fit_s = time.perf_counter() - t0
    from recsys.evaluation import rank_users

    rec = rank_users(score, users, 10, exclude=train, chunk_size=1024)
    peak = _peak_rss_bytes()
    np.save(Path(out).with_suffix(".npy"), rec)
    Path(out).write_text(json.dumps({"fit_seconds": fit_s, "load_seconds": load_s,
                                     "peak_rss_bytes": peak, **extra}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--events", type=int, default=20_000_000)
    p.add_argument("--eval-users", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--models", default="stylerec,als")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = p.parse_args(argv)

    from recsys.evaluation import ranking_metrics

    t0 = time.perf_counter()
    log = generate_log(args.users, args.items, args.events, seed=args.seed)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = log.matrix()
    matrix_s = time.perf_counter() - t0
    del log
    train, users, items = _hold_out(X, min(args.eval_users, X.shape[0] // 2), args.seed)
    print(f"log: {X.shape[0]:,} users x {X.shape[1]:,} items, {args.events:,} events "
          f"({X.nnz:,} distinct pairs); generated in {gen_s:.0f} s, matrix built in "
          f"{matrix_s:.1f} s; {len(users):,} users hold out one positive", flush=True)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "train.npz")
        sp.save_npz(path, train, compressed=False)
        np.savez(Path(tmp) / "heldout.npz", users=users)
        del X, train
        ctx = mp.get_context("spawn")
        for name in args.models.split(","):
            out = str(Path(tmp) / f"{name}.json")
            proc = ctx.Process(target=_fit_child, args=(name, path, out, args.seed))
            proc.start()
            proc.join()
            if proc.exitcode != 0:
                print(f"{name}: child exited with {proc.exitcode}", flush=True)
                continue
            figures = json.loads(Path(out).read_text())
            rec = np.load(Path(out).with_suffix(".npy"))
            m = ranking_metrics(rec, [np.array([i]) for i in items], 10)
            figures["ndcg@10"] = float(np.mean(m["ndcg@10"]))
            figures["hitrate@10"] = float(np.mean(m["hit_rate@10"]))
            results[name] = figures
            print(f"{name:9s} fit {figures['fit_seconds']:7.1f} s  peak RSS "
                  f"{figures['peak_rss_bytes'] / 2**30:5.2f} GiB  NDCG@10 {figures['ndcg@10']:.4f}"
                  f"  HR@10 {figures['hitrate@10']:.4f}  {json.dumps({k: v for k, v in figures.items() if k in ('best_epoch', 'steps', 'rounds')})}",
                  flush=True)
    if "stylerec" in results and "als" in results:
        s, a = results["stylerec"], results["als"]
        print(f"ratios stylerec / ALS: fit time {s['fit_seconds'] / a['fit_seconds']:.2f}x, "
              f"peak RSS {s['peak_rss_bytes'] / a['peak_rss_bytes']:.2f}x, "
              f"NDCG@10 {s['ndcg@10'] / max(a['ndcg@10'], 1e-12):.2f}x")
    if "stylerec" in results:
        s = results["stylerec"]
        ok = s["fit_seconds"] <= 600 and s["peak_rss_bytes"] <= 8 * 2**30
        print(f"target (fit <= 600 s, peak <= 8 GiB): {'met' if ok else 'NOT met'}")
    if args.json:
        print(json.dumps({"generate_seconds": gen_s, "matrix_seconds": matrix_s, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

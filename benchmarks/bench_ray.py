"""Benchmark: render throughput of the local executor beside the Ray executor (1 and 2 workers).

The nightly render stage's real work: each job is one H&M product photo
(``../shared/data``) rendered in ``background`` mode under K segment conditions
(blends of the artworks' style codes), written through a :class:`RenderCache`
as WebP, exactly as ``pipelines.stages`` hands jobs to an executor.  The same
jobs run on

* ``local``: :class:`~pipelines.executors.LocalExecutor`, in this process
  (torch/onnxruntime on ``--threads`` threads);
* ``ray 1 x 2``: :class:`~pipelines.executors.ray_executor.RayExecutor` (Ray Data
  ``map_batches`` over an actor pool) with one actor of 2 CPUs (so 2 threads);
* ``ray 2 x 1``: the same with two actors of 1 CPU each (1 thread each);

on a local Ray instance with ``--threads`` CPUs.  Each figure is renders per
second of wall time for the whole ``render`` call, so a Ray run includes
starting its actors and loading the models in them; that fixed cost is also
measured on its own (a call with one batch per worker, so that every actor of
the pool starts as in the full run) and printed, with the steady-state rate it
implies.  Outputs of every run are checked to be the same set of files.

Run (heavy: share the CPU politely)::

    flock /tmp/stylerec-cpu.lock .venv/bin/python benchmarks/bench_ray.py

``--items`` (30), ``--conditions`` (3), ``--max-side`` (384), ``--threads`` (2),
``--repeat`` (2; the median is reported); ``--smoke`` runs 2 items once.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from shared_data import require_photos

#: Items per Ray batch (``executor.jobs_per_task``).
JOBS_PER_TASK = 2


def _jobs(data: Path, n_items: int, n_conditions: int) -> list:
    """Render jobs like the render stage makes: one per item, one key per condition."""
    from pipelines.cache import condition_hash
    from pipelines.executors import RenderJob
    from stylizer.encoder import StyleEncoder
    from stylizer.image_io import load_image
    from stylizer.style_space import StyleSpace

    styles = sorted((data / "styles").glob("*.jpg"))
    codes = StyleEncoder(device="cpu").encode([load_image(p, max_side=512).rgb for p in styles])
    rng = np.random.default_rng(0)
    conditions = np.stack(
        [StyleSpace.blend(codes[rng.choice(len(codes), 2, replace=False)], [0.6, 0.4])
         for _ in range(n_conditions)]
    )  # fmt: skip
    photos = sorted((data / "hm" / "images").glob("*.jpg"))[:n_items]
    jobs = []
    for path in photos:
        keys = [
            hashlib.sha256(f"{path.name}:{j}".encode()).hexdigest()[:32]
            for j in range(n_conditions)
        ]
        jobs.append(
            RenderJob(path.stem, str(path), keys, conditions,
                      [condition_hash(c) for c in conditions])
        )  # fmt: skip
    return jobs


def _config(kind: str, max_side: int, workers: int = 1, cpus: float = 1.0) -> object:
    from pipelines.config import config_from_dict

    raw = {
        "inputs": {"events": ["e.parquet"], "catalog": "i.csv", "styles": "s.csv"},
        "render": {"mode": "background", "max_side": max_side, "format": "webp"},
        "executor": {"kind": kind, "num_workers": workers, "cpus_per_worker": cpus,
                     "jobs_per_task": JOBS_PER_TASK},
    }  # fmt: skip
    return config_from_dict(raw, Path("."))


def _run(make: Callable[[], object], jobs: list, root: Path) -> tuple[float, list[str]]:
    """Seconds for one whole ``render`` call into a fresh cache, and the files written."""
    from pipelines.cache import RenderCache

    if root.exists():
        shutil.rmtree(root)
    cache = RenderCache(root, "webp", quality=90)
    executor = make()
    t0 = time.perf_counter()
    outcomes = list(executor.render(jobs, cache))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    errors = [o.error for o in outcomes if o.error]
    if errors:
        raise SystemExit(f"render failed: {errors[:3]}")
    return elapsed, sorted(p.relative_to(root).as_posix() for p in cache.files())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--conditions", type=int, default=3)
    parser.add_argument("--max-side", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="2 items, once: checks the script")
    args = parser.parse_args(argv)
    if args.smoke:
        args.items, args.repeat, args.conditions = 2, 1, 2

    import ray
    import torch

    from pipelines.executors import LocalExecutor
    from pipelines.executors.ray_executor import RayExecutor

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    data = require_photos()
    jobs = _jobs(data, args.items, args.conditions)
    n_renders = sum(len(j.keys) for j in jobs)
    ray.init(num_cpus=args.threads, include_dashboard=False, logging_level="WARNING",
             object_store_memory=256 * 1024**2)  # fmt: skip
    setups: dict[str, Callable[[], object]] = {
        "local": lambda: LocalExecutor(_config("local", args.max_side)),
        "ray 1 worker x 2 CPUs": lambda: RayExecutor(
            _config("ray", args.max_side, workers=1, cpus=args.threads)
        ),
        "ray 2 workers x 1 CPU": lambda: RayExecutor(
            _config("ray", args.max_side, workers=2, cpus=args.threads / 2)
        ),
    }
    print(
        f"# render executors: {len(jobs)} items x {args.conditions} conditions = {n_renders} "
        f"renders, background mode, long side {args.max_side}, WebP; {args.threads} CPUs; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        walls: dict[str, list[float]] = {k: [] for k in setups}
        reference: list[str] | None = None
        for _ in range(args.repeat):  # interleaved, so machine load hits every setup alike
            for name, make in setups.items():
                elapsed, files = _run(make, jobs, tmp / "renders")
                if reference is None:
                    reference = files
                elif files != reference:
                    raise SystemExit(f"{name} wrote different files than the first run")
                walls[name].append(elapsed)
        # One batch per worker: Ray Data starts only as many actors as there are batches.
        first = {name: JOBS_PER_TASK * (2 if name.startswith("ray 2") else 1) for name in setups}
        startup = {name: _run(make, jobs[:first[name]], tmp / "one")[0]
                   for name, make in setups.items()}  # fmt: skip
        print("\n| executor | wall (median) | renders/s | vs local | one batch per worker (startup) |"
              " steady renders/s |")  # fmt: skip
        print("| --- | --- | --- | --- | --- | --- |")
        local_rate = n_renders / statistics.median(walls["local"])
        for name, w in walls.items():
            wall = statistics.median(w)
            rate = n_renders / wall
            per_job = (wall - startup[name]) / max(len(jobs) - first[name], 1)
            steady = args.conditions / per_job if per_job > 0 else float("nan")
            print(
                f"| {name} | {wall:.1f} s | {rate:.2f} | {rate / local_rate:.2f}x | "
                f"{startup[name]:.1f} s | {steady:.2f} |"
            )
        print(f"\nper CPU core (local): {local_rate / args.threads:.2f} renders/s; "
              f"load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""The Ray executor: embed and render as Ray Data ``map_batches`` over an actor pool.

Why Ray Data with a callable class: loading the encoder and the generator costs
far more than encoding a batch or rendering an item, so each actor of the pool
builds its model once and then serves many batches, while Ray Data does the
scheduling (least-busy actor, a bounded queue per actor, GPUs per actor when
the cluster has them) and the streaming of results back to the driver.  The
actors run the very functions the local executor runs
(:mod:`pipelines.executors.work`, with models built by
:class:`~pipelines.executors.local.LocalExecutor`), so both executors write the
same files.

What travels through Ray is plain Arrow columns: for embed, each row is
(``index``, ``path``); for render, (``index``, ``item_id``, ``image_path``,
``keys``, ``codes`` flattened, ``condition_hashes``).  The dataset is built one
block per batch, so every batch the actors see is exactly the local
executor's batch (same starts, same sizes: the encoder gives the same codes).
Workers read images and write render files themselves; results come back as
(``index``, codes or written keys, ``error``) rows, one per input row, so a bad
image fails only its own row, with its reason.

Fault tolerance is Ray's.  Ray Data's actor pool is created with
``max_restarts`` and ``max_task_retries`` = ``executor.max_retries`` (Ray Data's
own default is unbounded, which would retry forever a batch that kills its
worker every time, e.g. an image that runs it out of memory).  When a worker
process dies (killed, out of memory, node lost), Ray restarts the actor, which
builds its model again, and re-runs the batches that were in flight on it.
Re-running a render batch is safe because :meth:`RenderCache.write` writes to
a temporary name and renames: a retried key replaces its file with identical
bytes under the same name, never a second copy.  A worker killed in the middle
of a write leaves a ``.partial-`` file; those belonging to this call's keys are
removed once the dataset's execution has ended.  A worker that dies more often
than that fails the call with a :class:`RuntimeError` naming
``executor.max_retries``.

Connecting: ``executor.address`` from the config, else ``$RAY_ADDRESS``, else a
local Ray instance with ``executor.num_cpus`` CPUs (0: all).  A Ray that this
process already initialised is reused as it is (tests and notebooks do that).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any

import numpy as np
import pyarrow as pa

from pipelines.cache import PARTIAL_MARK, RenderCache, partial_final
from pipelines.config import Config
from pipelines.executors.local import LocalExecutor
from pipelines.executors.work import (
    EmbedOutcome,
    RenderJob,
    RenderOutcome,
    embed_images,
    render_job,
)
from stylizer.networks import STYLE_DIM

try:
    import ray
    import ray.data
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "executor.kind = 'ray' needs Ray: pip install 'stylerec[ray]'"
    ) from exc

log = logging.getLogger("stylerec.executor")

#: Object store of a Ray instance started here: the executor only ships paths,
#: codes and keys through it (workers read and write image files themselves).
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2

#: Batches queued per actor: one running, one waiting, so an actor never idles
#: while the driver round-trips, and a slow actor does not hoard the queue.
BATCHES_PER_ACTOR = 2

#: ``factory(cfg) -> renderer``, run inside each worker; must be picklable.
RendererFactory = Callable[[Config], object]


def default_renderer(cfg: Config) -> object:
    """The renderer the local executor would build for ``cfg`` (same code, same pixels)."""
    return LocalExecutor(cfg)._get_renderer()


def default_encoder(cfg: Config) -> object:
    """The style encoder the local executor would build for ``cfg``."""
    return LocalExecutor(cfg)._get_encoder()


def connect(cfg: Config) -> bool:
    """Initialise Ray for ``cfg`` unless it already is; True when this call started it.

    Order: ``executor.address``, then ``$RAY_ADDRESS``, then a new local
    instance capped at ``executor.num_cpus`` CPUs (0 = all cores).
    """
    if ray.is_initialized():
        return False
    address = cfg.executor.address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
    if address is None or address == "local":
        kwargs["num_cpus"] = cfg.executor.num_cpus or None
        kwargs["object_store_memory"] = LOCAL_OBJECT_STORE_BYTES
        address = None
    log.info("ray: %s", f"connecting to {address}" if address else "starting a local instance")
    ray.init(address=address, **kwargs)
    return True


# ---------------------------------------------------------------------- actor UDFs
class _EmbedActor:
    """Ray Data callable class: one per pool actor, holds the style encoder."""

    def __init__(self, cfg: Config) -> None:
        self.encoder = default_encoder(cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """(``index``, ``path``) rows -> (``index``, ``codes``, ``error``) rows."""
        part = embed_images(self.encoder, batch.column("path").to_pylist())
        codes = np.ascontiguousarray(part.codes, dtype=np.float32)
        return pa.table({
            "index": batch.column("index"),
            "codes": pa.FixedSizeListArray.from_arrays(pa.array(codes.ravel()), codes.shape[1]),
            "error": pa.array([part.errors.get(i) for i in range(len(codes))], pa.string()),
        })  # fmt: skip


class _RenderActor:
    """Ray Data callable class: one per pool actor, holds the renderer and the cache."""

    def __init__(self, cfg: Config, cache: RenderCache, renderer_factory: RendererFactory) -> None:
        self.cache = cache
        self.renderer = renderer_factory(cfg)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """Job rows -> (``index``, ``written``, ``error``, ``delta_e_*``) rows, files on disk."""
        outcomes = [render_job(self.renderer, self.cache, _job_from_row(row))
                    for row in batch.to_pylist()]  # fmt: skip
        return pa.table({
            "index": batch.column("index"),
            "written": pa.array([o.written for o in outcomes], pa.list_(pa.string())),
            "error": pa.array([o.error for o in outcomes], pa.string()),
            "delta_e_keys": pa.array([list(o.delta_e) for o in outcomes], pa.list_(pa.string())),
            "delta_e": pa.array([list(o.delta_e.values()) for o in outcomes],
                                pa.list_(pa.float64())),
        })  # fmt: skip


def _dataset(blocks: list[pa.Table]) -> ray.data.Dataset:
    """A dataset of exactly these blocks, in this order.

    ``from_blocks`` keeps the blocks as given (one block = one batch) and reads
    their metadata here; ``from_arrow`` (older Ray) runs a task per table for
    it, which costs a worker start (~1-2 s on a 2-core machine) per call.
    """
    from_blocks = getattr(ray.data, "from_blocks", None)
    return from_blocks(blocks) if from_blocks is not None else ray.data.from_arrow(blocks)


def _job_rows(jobs: Sequence[RenderJob], start: int) -> pa.Table:
    """Render jobs as plain Arrow columns (codes flattened row-major, one row per job)."""
    codes = [np.asarray(j.codes, dtype=np.float32) for j in jobs]
    return pa.table({
        "index": pa.array(range(start, start + len(jobs)), pa.int64()),
        "item_id": pa.array([j.item_id for j in jobs], pa.string()),
        "image_path": pa.array([j.image_path for j in jobs], pa.string()),
        "keys": pa.array([list(j.keys) for j in jobs], pa.list_(pa.string())),
        "codes": pa.array([c.ravel() for c in codes], pa.list_(pa.float32())),
        "condition_hashes": pa.array([list(j.condition_hashes) for j in jobs],
                                     pa.list_(pa.string())),
        # per-condition scene strength; null: the renderer's default
        "scene_strengths": pa.array([None if j.scene_strengths is None
                                     else [float(v) for v in j.scene_strengths] for j in jobs],
                                    pa.list_(pa.float64())),
    })  # fmt: skip


def _job_from_row(row: dict[str, Any]) -> RenderJob:
    keys = list(row["keys"])
    codes = np.asarray(row["codes"], dtype=np.float32).reshape(len(keys), -1)
    strengths = row.get("scene_strengths")
    return RenderJob(row["item_id"], row["image_path"], keys, codes, list(row["condition_hashes"]),
                     scene_strengths=None if strengths is None else [float(v) for v in strengths])


# ---------------------------------------------------------------------- executor
class RayExecutor:
    """Runs embed and render as Ray Data ``map_batches`` on ``executor.num_workers`` actors.

    Same interface and same output files as :class:`LocalExecutor`; render
    outcomes are yielded as their batches finish (not in job order).  Actors
    take ``executor.cpus_per_worker`` CPUs and, when the cluster has GPUs,
    ``executor.gpus_per_worker`` GPUs each; Ray Data tears the pool down when
    a call ends (normally, by an error, or by the consumer closing the render
    iterator).
    """

    name = "ray"

    def __init__(self, cfg: Config, renderer_factory: RendererFactory | None = None) -> None:
        self.cfg = cfg
        self.renderer_factory = renderer_factory or default_renderer
        self.started_ray = False

    def close(self) -> None:
        """Nothing to release: each call's actor pool ends with its dataset's execution.

        Kept so callers can treat every executor alike (``with`` blocks, ``close()``).
        """

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _map(
        self,
        blocks: list[pa.Table],
        actor_cls: type,
        batch_size: int,
        constructor_kwargs: dict[str, Any],
    ) -> Iterator[pa.Table]:
        """Stream ``actor_cls`` over ``blocks`` (one block = one batch); yield result blocks.

        Turns a worker that died more than ``executor.max_retries`` times into a
        :class:`RuntimeError` that says so.
        """
        self.started_ray = connect(self.cfg) or self.started_ray
        ex = self.cfg.executor
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        gpus = ex.gpus_per_worker if has_gpus and ex.gpus_per_worker > 0 else None
        ds = _dataset(blocks)
        workers = min(ex.num_workers, len(blocks))  # an actor without a batch loads a model for nothing
        with warnings.catch_warnings():
            # Ray 2.60 deprecates passing actor options as extra kwargs but has no
            # named parameter for max_restarts / max_task_retries yet; without them
            # Ray Data would retry a poison batch forever.
            warnings.filterwarnings("ignore", message=r".*ray_remote_args.*deprecated")
            ds = ds.map_batches(
                actor_cls,
                batch_size=batch_size,
                batch_format="pyarrow",
                zero_copy_batch=True,
                fn_constructor_kwargs=constructor_kwargs,
                compute=ray.data.ActorPoolStrategy(
                    size=workers, max_tasks_in_flight_per_actor=BATCHES_PER_ACTOR
                ),
                num_cpus=ex.cpus_per_worker,
                num_gpus=gpus,
                max_restarts=ex.max_retries,
                max_task_retries=ex.max_retries,
            )
        log.info("ray data: %d batches on %d actors (%s CPU, %s GPU each, %d retries)",
                 len(blocks), workers, ex.cpus_per_worker, gpus or 0,
                 ex.max_retries)  # fmt: skip
        results = ds.iter_batches(batch_size=None, batch_format="pyarrow")
        try:
            yield from results
        except ray.exceptions.RayActorError as exc:
            raise RuntimeError(
                f"ray worker died more than executor.max_retries="
                f"{ex.max_retries} times: {exc}"
            ) from exc
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # stops the execution (and its actors) if we leave early

    # ------------------------------------------------------------------ stages
    def embed(self, paths: list[str], batch_size: int = 32) -> EmbedOutcome:
        """Style codes for every path (NaN rows + reasons for bad images).

        Batches are the local executor's (same starts, same sizes), so the
        encoder sees the same batches and gives the same codes.
        """
        codes = np.full((len(paths), STYLE_DIM), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        blocks = [
            pa.table({"index": pa.array(range(s, min(s + batch_size, len(paths))), pa.int64()),
                      "path": pa.array(paths[s:s + batch_size], pa.string())})
            for s in range(0, len(paths), batch_size)
        ]  # fmt: skip
        done = 0
        if blocks:
            parts = self._map(blocks, _EmbedActor, batch_size, {"cfg": self.cfg})
            with closing(parts):
                for part in parts:
                    index = part.column("index").to_numpy()
                    flat = part.column("codes").combine_chunks().flatten().to_numpy()
                    codes[index] = flat.reshape(len(index), -1)
                    for i, err in zip(index, part.column("error").to_pylist(), strict=True):
                        if err is not None:
                            errors[int(i)] = err
                    done += len(index)
                    if not sys.stderr.isatty():
                        log.info("embedded %d/%d images on ray", done, len(paths))
        log.info("embedded %d images on ray, %d failed", len(paths) - len(errors), len(errors))
        return EmbedOutcome(codes, errors)

    def render(self, jobs: list[RenderJob], cache: RenderCache) -> Iterator[RenderOutcome]:
        """Render every job on the pool, yielding outcomes as their files are written."""
        per_batch = self.cfg.executor.jobs_per_task
        blocks = [_job_rows(jobs[s:s + per_batch], s) for s in range(0, len(jobs), per_batch)]
        if not blocks:
            return
        done_items = 0
        kwargs = {"cfg": self.cfg, "cache": cache, "renderer_factory": self.renderer_factory}
        parts = self._map(blocks, _RenderActor, per_batch, kwargs)
        try:
            with closing(parts):
                for part in parts:
                    for row in part.to_pylist():
                        done_items += 1
                        if not sys.stderr.isatty() and done_items % 50 == 0:
                            log.info("rendered %d/%d items on ray", done_items, len(jobs))
                        yield RenderOutcome(
                            jobs[row["index"]].item_id,
                            written=list(row["written"]),
                            error=row["error"],
                            delta_e=dict(zip(row["delta_e_keys"], row["delta_e"], strict=True)),
                        )
        finally:
            removed = remove_partials(cache, [k for j in jobs for k in j.keys])
            if removed:
                log.warning("removed %d partial files left by killed ray workers", removed)
        log.info("rendered %d/%d items on ray", done_items, len(jobs))


def remove_partials(cache: RenderCache, keys: Sequence[str]) -> int:
    """Delete temporary files of ``keys`` that a killed writer left behind; returns how many.

    Only called when no worker of ours is writing any more, and only for our
    own keys, so a concurrent writer of other renders is never disturbed.
    """
    names = {cache.path(k).name for k in keys}
    if not names:
        return 0
    n = 0
    for tmp in cache.root.glob(f"*/{PARTIAL_MARK}*"):
        if partial_final(tmp.name) in names:
            tmp.unlink(missing_ok=True)
            n += 1
    return n

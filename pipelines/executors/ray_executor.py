"""The Ray executor: embed and render spread over a pool of Ray actors.

Why actors and not plain tasks: loading the encoder and the generator costs far
more than encoding a batch or rendering an item, so each worker actor loads
them once and then serves many calls.  The actors run the very functions the
local executor runs (:mod:`pipelines.executors.work`, with models built by
:class:`~pipelines.executors.local.LocalExecutor`), so both executors write the
same files.

Fault tolerance is Ray's: every actor is created with ``max_restarts`` and
``max_task_retries`` set to ``executor.max_retries``, so when a worker process
dies (killed, out of memory, node lost) Ray starts a new one and re-runs the
calls that were in flight on it.  Re-running a render call is safe because
:meth:`RenderCache.write` writes to a temporary name and renames: a retried
key replaces its file with identical bytes under the same name, never a second
copy.  A worker killed in the middle of a write leaves a ``.partial-`` file;
those belonging to this call's keys are removed once every call has finished.

Connecting: ``executor.address`` from the config, else ``$RAY_ADDRESS``, else a
local Ray instance with ``executor.num_cpus`` CPUs (0: all).  A Ray that this
process already initialised is reused as it is (tests and notebooks do that).
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pipelines.cache import PARTIAL_MARK, RenderCache
from pipelines.config import Config
from pipelines.executors.local import LocalExecutor
from pipelines.executors.work import (
    EmbedOutcome,
    RenderJob,
    RenderOutcome,
    embed_images,
    render_job,
)

try:
    import ray
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "executor.kind = 'ray' needs Ray: pip install 'stylerec[ray]'"
    ) from exc

log = logging.getLogger("stylerec.executor")

#: Object store of a Ray instance started here: the executor only ships paths,
#: codes and keys through it (workers read and write image files themselves).
LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2

#: Calls queued per actor: one running, one waiting, so an actor never idles
#: while the driver round-trips.
CALLS_PER_ACTOR = 2

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


class _Worker:
    """One Ray actor: holds the encoder and the renderer, built on first use."""

    def __init__(self, cfg: Config, renderer_factory: RendererFactory) -> None:
        self.cfg = cfg
        self.renderer_factory = renderer_factory
        self._encoder: object | None = None
        self._renderer: object | None = None

    def pid(self) -> int:
        """The worker's process id (tests and logs use it)."""
        return os.getpid()

    def embed(self, paths: list[str]) -> EmbedOutcome:
        """Style codes of one batch of images."""
        if self._encoder is None:
            self._encoder = default_encoder(self.cfg)
        return embed_images(self._encoder, paths)

    def render(self, jobs: list[RenderJob], cache: RenderCache) -> list[RenderOutcome]:
        """Render a few items and write their files (atomically, by the cache)."""
        if self._renderer is None:
            self._renderer = self.renderer_factory(self.cfg)
        return [render_job(self._renderer, cache, job) for job in jobs]


class RayExecutor:
    """Runs embed and render on a pool of ``executor.num_workers`` Ray actors.

    Same interface and same output files as :class:`LocalExecutor`; render
    outcomes are yielded as their calls finish (not in job order).  Actors
    take ``executor.cpus_per_worker`` CPUs and, when the cluster has GPUs,
    ``executor.gpus_per_worker`` GPUs each; they are killed when a call ends
    (normally, by an error, or by the consumer closing the render iterator).
    """

    name = "ray"

    def __init__(self, cfg: Config, renderer_factory: RendererFactory | None = None) -> None:
        self.cfg = cfg
        self.renderer_factory = renderer_factory or default_renderer
        self.started_ray = False
        self._actors: list[Any] = []

    # ------------------------------------------------------------------ pool
    def _start_pool(self) -> list[Any]:
        self.started_ray = connect(self.cfg) or self.started_ray
        ex = self.cfg.executor
        gpus = ex.gpus_per_worker if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        actor_cls = ray.remote(_Worker).options(
            num_cpus=ex.cpus_per_worker,
            num_gpus=gpus,
            max_restarts=ex.max_retries,
            max_task_retries=ex.max_retries,
        )
        self._actors = [
            actor_cls.remote(self.cfg, self.renderer_factory) for _ in range(ex.num_workers)
        ]
        log.info("ray: %d workers (%s CPU, %s GPU each)", len(self._actors), ex.cpus_per_worker, gpus)
        return self._actors

    def close(self) -> None:
        """Kill this executor's actors (Ray itself stays up for the next stage)."""
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stream(self, method: str, calls: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, Any]]:
        """Run ``actor.method(*args)`` for every args tuple; yield ``(index, result)`` as done.

        Each actor has at most :data:`CALLS_PER_ACTOR` calls queued; a finished
        call frees its actor for the next one, so fast workers take more.
        """
        actors = self._actors or self._start_pool()
        todo = deque(range(len(calls)))
        pending: dict[Any, tuple[int, int]] = {}

        def submit(a: int) -> None:
            i = todo.popleft()
            pending[getattr(actors[a], method).remote(*calls[i])] = (a, i)

        for _ in range(CALLS_PER_ACTOR):
            for a in range(len(actors)):
                if todo:
                    submit(a)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            a, i = pending.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:
                raise RuntimeError(
                    f"ray worker died more than executor.max_retries="
                    f"{self.cfg.executor.max_retries} times: {exc}"
                ) from exc
            if todo:
                submit(a)
            yield i, result

    # ------------------------------------------------------------------ stages
    def embed(self, paths: list[str], batch_size: int = 32) -> EmbedOutcome:
        """Style codes for every path (NaN rows + reasons for bad images).

        Batches are the local executor's (same starts, same sizes), so the
        encoder sees the same batches and gives the same codes.
        """
        codes = np.full((len(paths), 100), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        starts = list(range(0, len(paths), batch_size))
        calls = [(paths[s:s + batch_size],) for s in starts]
        bar = tqdm(total=len(calls), desc="embed (ray)", unit="batch", disable=None, file=sys.stderr)
        try:
            for i, part in self._stream("embed", calls):
                start = starts[i]
                codes[start:start + len(part.codes)] = part.codes
                errors.update({start + j: e for j, e in part.errors.items()})
                bar.update(1)
        finally:
            bar.close()
            self.close()
        log.info("embedded %d images on ray, %d failed", len(paths) - len(errors), len(errors))
        return EmbedOutcome(codes, errors)

    def render(self, jobs: list[RenderJob], cache: RenderCache) -> Iterator[RenderOutcome]:
        """Render every job on the pool, yielding outcomes as their files are written."""
        n_renders = sum(len(j.keys) for j in jobs)
        per_call = self.cfg.executor.jobs_per_task
        chunks = [jobs[s:s + per_call] for s in range(0, len(jobs), per_call)]
        bar = tqdm(total=n_renders, desc="render (ray)", unit="img", disable=None, file=sys.stderr)
        done_items = 0
        try:
            if chunks:
                self.started_ray = connect(self.cfg) or self.started_ray
                cache_ref = ray.put(cache)  # shipped once, not once per call
                for _, outcomes in self._stream("render", [(c, cache_ref) for c in chunks]):
                    for outcome in outcomes:
                        bar.update(len(outcome.written))
                        done_items += 1
                        if not sys.stderr.isatty() and done_items % 50 == 0:
                            log.info("rendered %d/%d items on ray", done_items, len(jobs))
                        yield outcome
        finally:
            bar.close()
            self.close()
            removed = remove_partials(cache, [k for j in jobs for k in j.keys])
            if removed:
                log.warning("removed %d partial files left by killed ray workers", removed)


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
        # ``.partial-<pid>-<key>.<fmt>``: the final name follows the pid.
        final = tmp.name[len(PARTIAL_MARK):].partition("-")[2]
        if final in names:
            tmp.unlink(missing_ok=True)
            n += 1
    return n

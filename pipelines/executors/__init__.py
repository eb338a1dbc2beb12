"""Executors run the two heavy, embarrassingly parallel stages: embed and render.

``local`` runs them in this process, batched; ``ray`` spreads them over a Ray
cluster (Ray Data ``map_batches`` on an actor pool).  Both call the same work
functions in :mod:`pipelines.executors.work`, so their outputs are the same files.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pipelines.cache import RenderCache
from pipelines.config import Config
from pipelines.executors.local import LocalExecutor
from pipelines.executors.work import EmbedOutcome, RenderJob, RenderOutcome

__all__ = [
    "EmbedOutcome",
    "Executor",
    "LocalExecutor",
    "RenderJob",
    "RenderOutcome",
    "make_executor",
]


class Executor(Protocol):
    """What the embed and render stages call, whichever executor the config names."""

    def embed(self, paths: list[str], batch_size: int = 32) -> EmbedOutcome: ...

    def render(self, jobs: list[RenderJob], cache: RenderCache) -> Iterable[RenderOutcome]: ...


def make_executor(cfg: Config) -> Executor:
    """The executor the config names."""
    if cfg.executor.kind == "local":
        return LocalExecutor(cfg)
    if cfg.executor.kind == "ray":
        from pipelines.executors.ray_executor import RayExecutor

        return RayExecutor(cfg)
    raise ValueError(f"executor.kind: unknown executor {cfg.executor.kind!r}")

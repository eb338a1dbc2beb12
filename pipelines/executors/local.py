"""The in-process executor: batches on this machine, progress on a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import numpy as np
from tqdm.auto import tqdm

from pipelines.cache import RenderCache
from pipelines.config import Config
from pipelines.executors.work import (
    EmbedOutcome,
    RenderJob,
    RenderOutcome,
    embed_images,
    render_job,
)

log = logging.getLogger("stylerec.executor")


class LocalExecutor:
    """Runs embed and render in this process, in batches of the configured size."""

    name = "local"

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._encoder: object | None = None
        self._renderer: object | None = None

    def _get_encoder(self) -> object:
        if self._encoder is None:
            from stylizer.encoder import StyleEncoder

            self._encoder = StyleEncoder()
        return self._encoder

    def _get_renderer(self) -> object:
        if self._renderer is None:
            from stylizer.renderer import Renderer

            r = self.cfg.render
            # Masks are cached by image content in the work folder: a night computes the
            # mask of a new item once, whatever the number of conditions or reruns.
            mask_cache = self.cfg.path(self.cfg.outputs.work_dir) / "mask_cache"
            self._renderer = Renderer(
                mode=r.mode, strength=r.strength, max_side=r.max_side, batch_size=r.batch_size,
                scene_strength=r.scene_strength, shadow_strength=r.shadow_strength, tone=r.tone,
                mask_cache=mask_cache,
            )
        return self._renderer

    def embed(self, paths: list[str], batch_size: int = 32) -> EmbedOutcome:
        """Style codes for every path (NaN rows + reasons for bad images)."""
        codes = np.full((len(paths), 100), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        encoder = self._get_encoder()
        starts = range(0, len(paths), batch_size)
        for start in tqdm(starts, desc="embed", unit="batch", disable=None, file=sys.stderr):
            part = embed_images(encoder, paths[start:start + batch_size])
            codes[start:start + len(part.codes)] = part.codes
            errors.update({start + i: e for i, e in part.errors.items()})
        log.info("embedded %d images, %d failed", len(paths) - len(errors), len(errors))
        return EmbedOutcome(codes, errors)

    def render(
        self,
        jobs: list[RenderJob],
        cache: RenderCache,
    ) -> Iterator[RenderOutcome]:
        """Render every job, yielding each outcome as soon as its files are written."""
        renderer = self._get_renderer()
        n_renders = sum(len(j.keys) for j in jobs)
        bar = tqdm(total=n_renders, desc="render", unit="img", disable=None, file=sys.stderr)
        for i, job in enumerate(jobs):
            outcome = render_job(renderer, cache, job)
            bar.update(len(job.keys))
            if not sys.stderr.isatty() and (i + 1) % 50 == 0:
                log.info("rendered %d/%d items", i + 1, len(jobs))
            yield outcome
        bar.close()

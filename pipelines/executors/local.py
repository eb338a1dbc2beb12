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
from stylizer.networks import STYLE_DIM

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
            runtime = None
            if r.generator:  # a trained student instead of the imported generator
                from stylizer.student import make_student_runtime

                runtime = make_student_runtime(self.cfg.path(r.generator))
            # Masks are cached by image content in the work folder: a night computes the
            # mask of a new item once, whatever the number of conditions or reruns.
            mask_cache = self.cfg.path(self.cfg.outputs.work_dir) / "mask_cache"
            self._renderer = Renderer(
                mode=r.mode, strength=r.strength, max_side=r.max_side, batch_size=r.batch_size,
                scene_strength=r.scene_strength, shadow_strength=r.shadow_strength, tone=r.tone,
                mask_cache=mask_cache, runtime=runtime,
            )
        return self._renderer

    def embed(self, paths: list[str], batch_size: int = 32) -> EmbedOutcome:
        """Style codes for every path (NaN rows + reasons for bad images)."""
        codes = np.full((len(paths), STYLE_DIM), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        # The bar starts before the encoder loads: on a cold weights cache the first load
        # converts the weights (seconds), and a terminal should show time passing.
        bar = tqdm(total=len(paths), desc="embed", unit="img", disable=None, file=sys.stderr)
        encoder = self._get_encoder()
        for start in range(0, len(paths), batch_size):
            part = embed_images(encoder, paths[start:start + batch_size])
            codes[start:start + len(part.codes)] = part.codes
            errors.update({start + i: e for i, e in part.errors.items()})
            bar.update(len(part.codes))
        bar.close()
        log.info("embedded %d images, %d failed", len(paths) - len(errors), len(errors))
        return EmbedOutcome(codes, errors)

    def render(
        self,
        jobs: list[RenderJob],
        cache: RenderCache,
    ) -> Iterator[RenderOutcome]:
        """Render every job, yielding each outcome as soon as its files are written."""
        n_renders = sum(len(j.keys) for j in jobs)
        bar = tqdm(total=n_renders, desc="render", unit="img", disable=None, file=sys.stderr)
        renderer = self._get_renderer()
        # Not a terminal (cron, CI, a pipe): a count line at every quarter instead of a bar.
        every = max(1, -(-len(jobs) // 4))
        done = 0
        for i, job in enumerate(jobs):
            outcome = render_job(renderer, cache, job)
            bar.update(len(job.keys))
            done += len(job.keys)
            if bar.disable and ((i + 1) % every == 0 or i + 1 == len(jobs)):
                log.info("rendered %d/%d images (%d/%d items)", done, n_renders, i + 1, len(jobs))
            yield outcome
        bar.close()

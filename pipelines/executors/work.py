"""The work units shared by every executor: encode a batch of images, render one item.

Kept free of executor concerns so that a Ray actor and the local loop run the
very same code and produce the very same files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipelines.cache import RenderCache
from stylizer.image_io import ImageError, load_image
from stylizer.masks import product_mask
from stylizer.networks import STYLE_DIM

#: Images are decoded at most this large for style codes: the encoder works at 256 px.
EMBED_MAX_SIDE = 512
#: Product pixels sampled per render for the recorded fidelity (CIEDE2000) figure.
FIDELITY_PIXELS = 20_000


@dataclass
class EmbedOutcome:
    """Codes for a list of images; rows of failed images are NaN and listed in ``errors``."""

    codes: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)


@dataclass
class RenderJob:
    """One product image to render under every condition in ``codes`` (one key each)."""

    item_id: str
    image_path: str
    keys: list[str]
    codes: np.ndarray
    condition_hashes: list[str]
    #: Scene strength per condition (blend of the stylized scene with the clean backdrop);
    #: None: the renderer's default.
    scene_strengths: list[float] | None = None


@dataclass
class RenderOutcome:
    """What happened to a job: the keys written, or the reason it failed."""

    item_id: str
    written: list[str] = field(default_factory=list)
    error: str | None = None
    #: Mean CIEDE2000 inside the product mask per written key (not for ``full`` mode).
    delta_e: dict[str, float] = field(default_factory=dict)
    #: Rim score (extra unchanged backdrop 3-10 px outside the mask) per written key.
    rim: dict[str, float] = field(default_factory=dict)


def embed_images(encoder: object, paths: list[str], max_side: int = EMBED_MAX_SIDE) -> EmbedOutcome:
    """Style codes of ``paths``; unreadable images get NaN rows and a reason, the rest proceed."""
    codes = np.full((len(paths), STYLE_DIM), np.nan, dtype=np.float32)
    errors: dict[int, str] = {}
    images: list[np.ndarray] = []
    rows: list[int] = []
    for i, p in enumerate(paths):
        try:
            images.append(load_image(p, max_side=max_side).rgb)
            rows.append(i)
        except Exception as exc:  # noqa: BLE001 - one image never fails the stage
            errors[i] = _reason(p, exc)
    if images:
        try:
            codes[rows] = encoder.encode(images)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - find the image(s) the batch failed on
            for i, image in zip(rows, images, strict=True):
                try:
                    codes[i] = encoder.encode([image])[0]  # type: ignore[attr-defined]
                except Exception as exc:  # noqa: BLE001
                    errors[i] = _reason(paths[i], exc)
    return EmbedOutcome(codes, errors)


def _reason(path: str, exc: BaseException) -> str:
    """A quarantine reason for one failed image: our own errors as they are, others typed."""
    if isinstance(exc, ImageError | FileNotFoundError):
        return str(exc)
    return f"{path}: {type(exc).__name__}: {exc}"


def render_job(renderer: object, cache: RenderCache, job: RenderJob) -> RenderOutcome:
    """Render one item under each of its conditions and write the files atomically.

    The product mask is computed once per item and handed to the renderer for
    every condition (a supplied mask wins over estimation), so K segments cost
    one mask, not K.
    """
    out = RenderOutcome(job.item_id)
    try:
        _render_into(renderer, cache, job, out)
    except Exception as exc:  # noqa: BLE001 - any failure of one item is that item's alone
        out.error = _reason(job.image_path, exc)
    return out


def _render_into(renderer: object, cache: RenderCache, job: RenderJob, out: RenderOutcome) -> None:
    loaded = load_image(job.image_path, max_side=renderer.max_side)  # type: ignore[attr-defined]
    if renderer.mode == "full":  # type: ignore[attr-defined]
        masks = None
    else:
        # The renderer's own mask (its method and content-keyed cache) when it has one.
        mask_for = getattr(renderer, "mask_for", None)
        mask = (
            mask_for(loaded.rgb, alpha=loaded.alpha)
            if mask_for is not None
            else product_mask(loaded.rgb, alpha=loaded.alpha)
        )
        masks = [mask] * len(job.keys)
    images = [loaded.rgb] * len(job.keys)
    codes = np.asarray(job.codes, dtype=np.float32)
    kwargs = {} if job.scene_strengths is None else {"scene_strengths": job.scene_strengths}
    # The finished scenes come with the renders when the renderer gives them: the rim
    # figure then ignores scene pixels that match the old backdrop by chance.
    detailed = getattr(renderer, "render_detailed", None)
    if masks is not None and detailed is not None:
        results = detailed(images, codes, masks, **kwargs)
        renders, scenes = [r.image for r in results], [r.scene for r in results]
    else:
        renders = renderer.render(images, codes, masks, **kwargs)  # type: ignore[attr-defined]
        scenes = [None] * len(renders)
    for key, rgb, scene in zip(job.keys, renders, scenes, strict=True):
        cache.write(key, rgb)
        out.written.append(key)
        if masks is not None:
            out.delta_e[key] = product_fidelity(loaded.rgb, rgb, masks[0])
            out.rim[key] = _rim(loaded.rgb, rgb, masks[0], scene)


def product_fidelity(original: np.ndarray, rendered: np.ndarray, mask: np.ndarray) -> float:
    """Mean CIEDE2000 inside the product, on at most ``FIDELITY_PIXELS`` pixels.

    Recorded for every render so that the report (and anyone auditing a night)
    can see that the product stayed true; a fixed stride subsample keeps it
    cheap next to the render itself and deterministic.
    """
    from stylizer.masks import binarize
    from stylizer.metrics import delta_e_map

    inside = binarize(mask, erode_px=2)
    ys, xs = np.nonzero(inside)
    if ys.size == 0:
        return 0.0
    step = max(1, ys.size // FIDELITY_PIXELS)
    ys, xs = ys[::step], xs[::step]
    return float(delta_e_map(original[ys, xs][None], rendered[ys, xs][None]).mean())


def _rim(
    original: np.ndarray, rendered: np.ndarray, mask: np.ndarray, scene: np.ndarray | None = None
) -> float:
    """Backdrop left unchanged next to the product (see :func:`stylizer.metrics.rim_score`)."""
    from stylizer.metrics import rim_score

    if rendered.shape != original.shape:
        return 0.0
    if scene is not None and scene.shape != original.shape:
        scene = None
    return rim_score(original, rendered, mask, scene=scene)

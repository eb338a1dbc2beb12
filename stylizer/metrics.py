"""Image metrics for product-preserving renders.

These are what the acceptance of a render is judged by, and what the nightly
report plots:

* ``product_delta_e``: mean CIEDE2000 between original and render inside the
  product (2.3 is the just-noticeable difference), on the binarized and
  slightly eroded mask, because the feathered seam legitimately mixes product
  and new background.
* ``product_ssim``: structural similarity inside the product (edges, print,
  texture kept).
* ``style_similarity``: cosine of whitened style codes between a render (or
  only its background) and the style image: did the style arrive?
* ``halo_score``: mean CIEDE2000, in a band just outside the product, between
  the render and a clean render of the scene without the product.  A ring of
  the old backdrop, or product colours smeared outward, show up there.

The edge metrics judge what a shopper sees around the product.  Measured
against a *reference* mask the renderer did not produce (the acceptance
evaluation), they catch mask errors; measured against the renderer's own mask
(the nightly report), they catch compositing errors:

* ``rim_score``: the share of a band 3-10 px outside the product where the
  render left the original backdrop unchanged, in excess of the share over
  the background as a whole (a calm scene leaves some backdrop nearly as it
  was everywhere; a rim is *extra* unchanged backdrop hugging the product).
  Given the finished scene, an unchanged pixel counts only where that scene
  differs from the old backdrop, so that a scene matching the paper by chance
  is no rim;
* ``hole_area``: the largest region the reference calls backdrop that the
  render kept as product (the gap between trouser legs, a handle's inside),
  beyond a 2 px seam, as a share of the frame;
* ``silhouette_change``: the product's mask estimated on the render vs on the
  original (same estimator), pixels that differ as a share of the product's
  area: a product that grew (a rim, a shadow read as product) or shrank;
  optionally only where the render visibly changed (``visible_change``), growth
  and shrinkage each near its own kind of change.

Networks are passed in (an encoder and a fitted :class:`StyleSpace`), never
loaded at import, so the metrics module stays cheap to import.
"""

from __future__ import annotations

import functools
from typing import Protocol

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import structural_similarity

from stylizer.masks import binarize
from stylizer.quality import frechet_distance, frechet_interval, psnr, ssim, trunk_features  # noqa: F401
from stylizer.style_space import StyleSpace

__all__ = [
    "Encoder",
    "delta_e_map",
    "halo_score",
    "product_delta_e",
    "product_ssim",
    "style_similarity",
    "background_only",
    "hole_area",
    "rim_score",
    "silhouette_change",
    "visible_change",
]


class Encoder(Protocol):
    """Anything with ``encode(list of HxWx3 uint8) -> (N, 100)`` (e.g. ``StyleEncoder``)."""

    def encode(self, images: list[np.ndarray]) -> np.ndarray: ...  # noqa: D102


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"images must be equal-shape HxWx3, got {a.shape} and {b.shape}")


def delta_e_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel CIEDE2000 between two sRGB uint8 images."""
    _check_pair(a, b)
    return deltaE_ciede2000(rgb2lab(a), rgb2lab(b)).astype(np.float32)


def product_delta_e(
    original: np.ndarray,
    rendered: np.ndarray,
    mask: np.ndarray,
    erode_px: int = 2,
    stat: str = "mean",
) -> float:
    """Mean (or ``"p95"``/``"max"``) CIEDE2000 inside ``mask > 0.5`` eroded by ``erode_px``.

    Returns 0.0 when the mask is empty (nothing to keep, nothing changed).
    """
    inside = binarize(mask, erode_px=erode_px)
    if not inside.any():
        return 0.0
    _check_pair(original, rendered)
    de = deltaE_ciede2000(rgb2lab(original[inside][None]), rgb2lab(rendered[inside][None]))
    if stat == "mean":
        return float(de.mean())
    if stat == "p95":
        return float(np.percentile(de, 95))
    if stat == "max":
        return float(de.max())
    raise ValueError(f"unknown stat {stat!r}; use mean, p95 or max")


def product_ssim(
    original: np.ndarray, rendered: np.ndarray, mask: np.ndarray, erode_px: int = 2
) -> float:
    """SSIM (on lightness) averaged over the product: 1.0 means structure fully kept."""
    _check_pair(original, rendered)
    inside = binarize(mask, erode_px=erode_px)
    if not inside.any():
        return 1.0
    la = rgb2lab(original)[..., 0]
    lb = rgb2lab(rendered)[..., 0]
    _, smap = structural_similarity(la, lb, data_range=100.0, full=True, gaussian_weights=True)
    return float(smap[inside].mean())


def background_only(image: np.ndarray, mask: np.ndarray, min_patches: int = 6) -> np.ndarray:
    """A mosaic of square patches that lie entirely in the background.

    The encoder sees whole images, so to ask "did the *background* take the
    style" the product must be out of view.  Filling the product's place would
    dilute the texture with a smooth patch (fatal when the product fills most
    of the frame); a mosaic of real background patches keeps the texture and
    colours at their true scale.  Patches shrink until at least ``min_patches``
    fit; the mosaic repeats them cyclically to a square grid.  Deterministic, so
    two renders of one photo are compared on exactly the same pixels.
    """
    h, w = mask.shape
    outside = mask < 0.05
    if outside.all():
        return image
    integral = cv2.integral(outside.astype(np.uint8))
    size = max(8, round(0.2 * min(h, w)))
    patches: list[np.ndarray] = []
    while size >= 8:
        stride = max(4, size // 2)
        ys = np.arange(0, h - size + 1, stride)
        xs = np.arange(0, w - size + 1, stride)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        yy, xx = yy.ravel(), xx.ravel()
        inside = (
            integral[yy + size, xx + size]
            - integral[yy, xx + size]
            - integral[yy + size, xx]
            + integral[yy, xx]
        )
        ok = np.flatnonzero(inside == size * size)
        if len(ok) >= min_patches:
            patches = [
                image[y : y + size, x : x + size] for y, x in zip(yy[ok], xx[ok], strict=True)
            ]
            break
        size = size * 3 // 4
    if not patches:
        raise ValueError("no background patch of 8x8 pixels: the product fills the frame")
    k = int(np.ceil(np.sqrt(len(patches))))
    tiles = [patches[i % len(patches)] for i in range(k * k)]
    rows = [np.concatenate(tiles[r * k : (r + 1) * k], axis=1) for r in range(k)]
    return np.ascontiguousarray(np.concatenate(rows, axis=0))


def style_similarity(
    image: np.ndarray,
    style: np.ndarray,
    encoder: Encoder,
    space: StyleSpace,
    mask: np.ndarray | None = None,
) -> float:
    """Cosine of whitened codes between ``image`` (its background if ``mask``) and ``style``.

    ``style`` is a style image (HxWx3 uint8) or its code (``(100,)``).
    """
    view = image if mask is None else background_only(image, mask)
    if style.ndim == 3:
        codes = encoder.encode([view, style])
        a, b = codes[0], codes[1]
    else:
        a = encoder.encode([view])[0]
        b = style
    return float(space.similarity(a, b))


def halo_score(
    rendered: np.ndarray, clean: np.ndarray, mask: np.ndarray, width: int | None = None
) -> float:
    """Mean CIEDE2000 between ``rendered`` and ``clean`` in a band just outside the product.

    ``clean`` is the stylized scene rendered without the product (the renderer's
    ``Rendered.scene``).  The band starts past the feathered seam (mask < 0.05)
    and is ``width`` pixels wide (default 2 % of the long side, at least 3).
    A render with no halo scores near 0; a ring of old backdrop or product
    colours bleeding out scores high.
    """
    _check_pair(rendered, clean)
    h, w = mask.shape
    width = width or max(3, round(0.02 * max(h, w)))
    hard = binarize(mask)
    if not hard.any():
        return 0.0
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    band = (cv2.dilate(hard.astype(np.uint8), k) > 0) & (mask < 0.05)
    if not band.any():
        return 0.0
    de = deltaE_ciede2000(rgb2lab(rendered[band][None]), rgb2lab(clean[band][None]))
    return float(de.mean())


def _band(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    """Pixels between ``inner`` and ``outer`` px outside the hard mask (> 0.5)."""
    hard = (mask > 0.5).astype(np.uint8)
    near = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1,) * 2))
    far = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outer + 1,) * 2))
    return (far > 0) & (near == 0)


def rim_score(
    original: np.ndarray,
    rendered: np.ndarray,
    mask: np.ndarray,
    inner: int = 3,
    outer: int = 10,
    unchanged_de: float = 2.0,
    scene: np.ndarray | None = None,
) -> float:
    """Extra share of unchanged backdrop in the band ``inner``-``outer`` px outside the product.

    A pixel is unchanged when its CIEDE2000 to the original is below
    ``unchanged_de``.  Returns ``max(0, share in band - share in the rest of
    the background)``: 0 for a clean edge, up to 1 for a full ring of old backdrop.

    ``scene``: the finished scene the render should show outside the product
    (the renderer's ``Rendered.scene``, shadow included).  When given, an
    unchanged pixel counts only where that scene itself differs from the
    original (CIEDE2000 of at least ``unchanged_de``).  Where the scene matches
    the old backdrop by chance (a pale scene darkened by the contact shadow to
    the paper's grey), a render showing the scene and one keeping the backdrop
    are the same picture: no mask can be blamed and no shopper sees a rim.
    Without it, such pixels count as kept backdrop.
    """
    _check_pair(original, rendered)
    band = _band(mask, inner, outer)
    rest = ~_band(mask, 0, outer) & (mask <= 0.5)
    if scene is not None:
        _check_pair(original, scene)
    if not band.any():
        return 0.0

    def unchanged_share(where: np.ndarray, max_pixels: int) -> float:
        # A fixed-stride sample bounds the cost (CIEDE2000 is slow) and stays deterministic.
        ys, xs = np.nonzero(where)
        step = max(1, ys.size // max_pixels)
        ys, xs = ys[::step], xs[::step]
        lab = rgb2lab(original[ys, xs][None])
        kept = deltaE_ciede2000(lab, rgb2lab(rendered[ys, xs][None])) < unchanged_de
        if scene is not None:
            kept &= deltaE_ciede2000(lab, rgb2lab(scene[ys, xs][None])) >= unchanged_de
        return float(kept.mean())

    base = unchanged_share(rest, 20_000) if rest.any() else 0.0
    return max(0.0, unchanged_share(band, 20_000) - base)


def hole_area(kept: np.ndarray, reference: np.ndarray, seam_px: int = 2) -> float:
    """Largest connected region kept as product (``kept > 0.5``) that ``reference`` calls backdrop.

    Pixels within ``seam_px`` of the reference product are the seam, not a hole.
    Returns its area as a share of the frame (0 when nothing is kept wrongly).
    """
    ref = (reference > 0.5).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * seam_px + 1,) * 2)
    wrong = (kept > 0.5) & (cv2.dilate(ref, k) == 0)
    if not wrong.any():
        return 0.0
    n, _, stats, _ = cv2.connectedComponentsWithStats(wrong.astype(np.uint8), connectivity=8)
    return float(stats[1:, cv2.CC_STAT_AREA].max()) / wrong.size


def silhouette_change(
    original: np.ndarray,
    rendered: np.ndarray,
    estimator: object | None = None,
    before: np.ndarray | None = None,
    tolerance_px: int = 0,
    after: np.ndarray | None = None,
    where: np.ndarray | None = None,
    product_area: float | None = None,
    shrink_where: np.ndarray | None = None,
) -> float:
    """Pixels whose product/not-product call differs between render and original, per product pixel.

    ``estimator(image) -> float HxW in [0, 1]``; default: the salient-object
    prior (:func:`stylizer.saliency.salient_prior`) averaged over the image's
    mirror images (``flips=True``), which judges shape and does not assume a
    plain backdrop, so it reads the render as fairly as the photo; one view
    alone flips its call on whole regions for changes nobody sees.  0 means
    the product's silhouette is exactly what it was.
    ``before``: the estimator's output on ``original`` when already known (one
    photo under many styles); ``after``: the same on ``rendered`` (one render
    judged against two originals).  ``tolerance_px``: differences within this many
    pixels of the original's outline are not counted: the default estimator
    works at 320 x 320 and its outline wanders by a pixel or two with any
    change of the scene, which is not a product that grew or shrank.
    ``where``: count differences only inside this ``HxW`` bool region, for
    example near the pixels where ``rendered`` visibly differs from ``original``
    (:func:`visible_change`).  A product can only grow or shrink where pixels
    changed, while a whole-image network may flip its call on a region far from
    any change: noise of one grey level, invisible, moves its verdict on a
    patterned scene by up to the whole product.
    ``product_area``: the pixels to divide by, when known better than from the
    estimate on ``original`` (a reference mask): the estimator may see nothing
    at all on the original (a pale thong on a marble scene), and then only a
    known area keeps the figure defined.
    ``shrink_where``: when given, ``where`` bounds growth only (pixels the
    estimate gained on ``rendered``) and this region bounds shrinkage (pixels
    it lost).  With a reference product mask: growth near pixels that changed
    outside the product (backdrop the render kept where the original shows the
    scene), shrinkage near pixels that changed inside it (product the render
    lost).  A product cannot grow where the render shows less of it: an
    estimator that gains product beside product the render lost, or drops
    product beside kept paper, has flipped its own call, as it does far from
    any change (``visible_change(..., within=...)`` builds both regions).  Nor
    can it grow into its own pixels, or shrink off the backdrop: intersect
    growth's region with the outside of the reference and shrinkage's with its
    inside, or an estimator whose outline falls short of the product on the
    original counts the product's own edge as growth.
    """
    _check_pair(original, rendered)
    if estimator is None:
        from stylizer.saliency import salient_prior

        estimator = functools.partial(salient_prior, flips=True)
    a = np.asarray(before if before is not None else estimator(original)) > 0.5  # type: ignore[operator]
    b = np.asarray(after if after is not None else estimator(rendered)) > 0.5  # type: ignore[operator]
    if product_area is None and not a.any():
        seen = b if where is None else b & np.asarray(where, bool)
        return 0.0 if not seen.any() else 1.0
    diff = a ^ b
    if tolerance_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1,) * 2)
        a8 = a.astype(np.uint8)
        outline = (cv2.dilate(a8, k) > 0) & (cv2.erode(a8, k) == 0)
        diff &= ~outline
    if shrink_where is not None:
        grown = diff & b if where is None else diff & b & np.asarray(where, bool)
        diff = grown | (diff & a & np.asarray(shrink_where, bool))
    elif where is not None:
        diff &= np.asarray(where, bool)
    return float(diff.sum()) / max(float(product_area if product_area is not None else a.sum()), 1.0)


def visible_change(
    a: np.ndarray,
    b: np.ndarray,
    jnd: float = 2.3,
    reach_px: int = 3,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Where ``b`` visibly differs from ``a`` (CIEDE2000 over ``jnd``), grown by ``reach_px``.

    The region a silhouette can have changed in (:func:`silhouette_change`'s
    ``where``): the growth covers the estimator's own blur around a changed edge.
    ``within``: count only changed pixels inside this ``HxW`` bool region, before
    the growth (outside a reference product for growth, inside it for shrinkage).
    """
    changed = delta_e_map(a, b) > jnd
    if within is not None:
        changed &= np.asarray(within, bool)
    changed = changed.astype(np.uint8)
    if reach_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach_px + 1,) * 2)
        changed = cv2.dilate(changed, k)
    return changed > 0

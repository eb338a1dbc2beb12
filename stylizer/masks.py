"""Product masks for studio catalog photos.

The product-preserving render keeps every product pixel from the original, so
the mask decides what the shopper sees unchanged.  Catalog photos are studio
shots: the product (or a model wearing it) on a plain, light, often slightly
graded background, sometimes with a soft shadow or a prop.  That makes the
*background* the easy thing to model:

1. fit a smooth (quadratic) colour surface to the image border in CIELAB,
   robustly, so a product touching an edge does not bend the fit;
2. measure each pixel's distance to that surface, counting "darker than the
   background" at a discount (a soft shadow changes lightness, hardly chroma,
   while a product differs in chroma or by a lot of lightness);
3. seed OpenCV GrabCut with definite/probable labels from those distances, so
   the colour models and the edge-aware graph cut settle the uncertain band
   (white shirts on white, grey knitwear on grey);
4. clean up (tiny specks out, tiny holes filled), then upsample and feather the
   edge so the composite has no jagged or hard seam.

A user-supplied mask (an alpha channel or a mask file) always wins: it is what
the merchant says the product is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["MaskParams", "background_model", "product_mask", "binarize"]

#: Seed of OpenCV's RNG before GrabCut, so that a photo always gets the same mask.
_GRABCUT_SEED = 0x5EED


@dataclass(frozen=True)
class MaskParams:
    """Knobs of the estimated mask; defaults hold across studio catalogs.

    ``work_side``: long side at which the mask is estimated (GrabCut cost grows
    with area; edges are refined by feathering after upsampling).
    ``border_frac``: width of the border strip that defines the background.
    ``shadow_discount``: darker-than-background lightness differences are divided
    by this (shadows), lighter ones are not.
    ``min_threshold``: floor of the background-distance threshold (CIELAB units),
    above JPEG noise.
    ``feather_px``: Gaussian sigma of the soft edge at output resolution.
    """

    work_side: int = 320
    border_frac: float = 0.03
    shadow_discount: float = 2.5
    min_threshold: float = 2.5
    grabcut_iters: int = 4
    min_component_frac: float = 0.0015
    max_hole_frac: float = 0.002
    feather_px: float = 1.0


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _poly_features(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    x = x / max(w - 1, 1) * 2 - 1
    y = y / max(h - 1, 1) * 2 - 1
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1)


def background_model(lab: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """Robust quadratic fit of the border colour; returns (background Lab image, border residuals).

    Studio backgrounds are graded (vignetting, sweep lighting), so a single
    border colour would misclassify a corner; a quadratic surface does not.
    Reweighting drops border pixels that are product (a sleeve or a model's
    feet cut by the frame).
    """
    h, w = lab.shape[:2]
    feats = _poly_features(h, w)
    strip = np.zeros((h, w), bool)
    strip[:border] = strip[-border:] = True
    strip[:, :border] = strip[:, -border:] = True
    X = feats[strip]
    Y = lab[strip].astype(np.float64)
    keep = _dominant_light_cluster(Y)
    # With little clean border left (a product filling the frame), a quadratic would
    # extrapolate wildly from a few corners: fall back to a plane.
    n_terms = X.shape[1] if keep.mean() >= 0.5 else 3
    coef = np.zeros((X.shape[1], 3))
    for _ in range(3):
        sol, *_ = np.linalg.lstsq(X[keep][:, :n_terms], Y[keep], rcond=None)
        coef = np.zeros((X.shape[1], 3))
        coef[:n_terms] = sol
        res = np.linalg.norm(Y - X @ coef, axis=1)
        scale = 1.4826 * np.median(np.abs(res[keep] - np.median(res[keep]))) + 0.5
        new_keep = res < np.median(res[keep]) + 3.0 * scale
        if new_keep.sum() < n_terms * 4 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    bg = (feats.reshape(-1, feats.shape[-1]) @ coef).reshape(h, w, 3).astype(np.float32)
    return bg, np.linalg.norm(Y - X @ coef, axis=1)[keep]


def _dominant_light_cluster(border_lab: np.ndarray, radius: float = 6.0) -> np.ndarray:
    """Border pixels of the background colour: the lightest colour covering >= 15 % of the border.

    Studio backgrounds are light and fill most of the border, but a garment that
    fills the frame can own more of the border than the background does; among
    the common border colours the lightest one is the backdrop.
    """
    q = np.floor(border_lab / np.array([radius, radius, radius])).astype(np.int64)
    keys, inverse, counts = np.unique(q, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    frac = counts / counts.sum()
    centres = (
        np.stack(
            [np.bincount(inverse, weights=border_lab[:, c], minlength=len(keys)) for c in range(3)],
            axis=1,
        )
        / counts[:, None]
    )
    # Merge neighbouring bins: a colour split across a bin edge must still count as one.
    near = np.linalg.norm(centres[:, None] - centres[None], axis=-1) < 1.5 * radius
    support = near @ frac
    candidates = np.flatnonzero(support >= 0.15)
    if len(candidates) == 0:
        best = int(np.argmax(support))
    else:
        best = int(candidates[np.argmax(centres[candidates, 0])])
    keep = np.linalg.norm(border_lab - centres[best], axis=1) < 1.5 * radius
    return keep if keep.sum() >= 24 else np.ones(len(border_lab), bool)


def _distance(lab: np.ndarray, bg: np.ndarray, shadow_discount: float) -> np.ndarray:
    d = lab - bg
    dl = np.where(d[..., 0] < 0, d[..., 0] / shadow_discount, d[..., 0])
    return np.sqrt(dl * dl + d[..., 1] ** 2 + d[..., 2] ** 2)


def _clean(binary: np.ndarray, p: MaskParams) -> np.ndarray:
    """Drop specks, fill pinholes: components and holes below a fraction of the frame."""
    area = binary.size
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)
    if n > 1:
        sizes = stats[1:, cv2.CC_STAT_AREA]
        keep_min = max(p.min_component_frac * area, 0.03 * sizes.max())
        keep_ids = np.flatnonzero(sizes >= keep_min) + 1
        binary = np.isin(labels, keep_ids)
    inv = (~binary).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    h, w = binary.shape
    for i in range(1, n):
        x, y, bw, bh, a = stats[i]
        touches = x == 0 or y == 0 or x + bw == w or y + bh == h
        if not touches and a <= p.max_hole_frac * area:
            binary[labels == i] = True
    return binary


def _estimate(rgb: np.ndarray, p: MaskParams) -> np.ndarray:
    """Binary product mask at working resolution (bool)."""
    h, w = rgb.shape[:2]
    lab = _lab(rgb)
    border = max(2, round(p.border_frac * min(h, w)))
    bg, border_res = background_model(lab, border)
    dist = _distance(lab, bg, p.shadow_discount)
    noise = 1.4826 * float(np.median(np.abs(border_res - np.median(border_res))))
    t_lo = max(p.min_threshold, float(np.median(border_res)) + 4.0 * noise)
    t_hi = 3.0 * t_lo
    dist = cv2.GaussianBlur(dist, (0, 0), 0.7)
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    gc[dist >= t_lo] = cv2.GC_PR_FGD
    core = cv2.erode((dist >= t_hi).astype(np.uint8), np.ones((3, 3), np.uint8))
    gc[core > 0] = cv2.GC_FGD
    strip = np.zeros((h, w), bool)
    strip[:border] = strip[-border:] = True
    strip[:, :border] = strip[:, -border:] = True
    gc[strip & (dist < t_lo)] = cv2.GC_BGD
    fg_seed = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if fg_seed.sum() < 0.0005 * h * w:
        return np.zeros((h, w), bool)  # nothing stands out from the background
    if not np.any(np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD))):
        return np.ones((h, w), bool)
    binary = fg_seed
    try:
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        # GrabCut seeds its colour models with k-means on OpenCV's per-thread RNG; without
        # a fixed seed the same photo gets a different mask in every call and process
        # (the local and Ray executors would then write different renders).
        cv2.setRNGSeed(_GRABCUT_SEED)
        cv2.grabCut(rgb, gc, None, bgd, fgd, p.grabcut_iters, cv2.GC_INIT_WITH_MASK)
        binary = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))
    except cv2.error:
        pass  # degenerate colour models: keep the threshold mask
    binary = cv2.morphologyEx(
        binary.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
    ).astype(bool)
    return _clean(binary, p)


def product_mask(
    image: np.ndarray,
    alpha: np.ndarray | None = None,
    user_mask: np.ndarray | None = None,
    params: MaskParams | None = None,
) -> np.ndarray:
    """Soft product mask (float32 ``H x W`` in [0, 1]; 1 = product) for an RGB uint8 image.

    ``user_mask`` (float in [0, 1] or uint8) wins over ``alpha`` (uint8 alpha
    channel of a cut-out), which wins over the estimate; a supplied mask is
    only resized, never second-guessed.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    supplied = user_mask if user_mask is not None else alpha
    if supplied is not None:
        m = np.asarray(supplied)
        m = m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32)
        if m.ndim == 3:
            m = m[..., -1]
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(m, 0.0, 1.0)
    p = params or MaskParams()
    scale = min(1.0, p.work_side / max(h, w))
    small = (
        image
        if scale == 1.0
        else cv2.resize(
            image,
            (max(1, round(w * scale)), max(1, round(h * scale))),
            interpolation=cv2.INTER_AREA,
        )
    )
    binary = _estimate(small, p).astype(np.float32)
    if binary.shape != (h, w):
        binary = cv2.resize(binary, (w, h), interpolation=cv2.INTER_LINEAR)
        binary = (binary >= 0.5).astype(np.float32)
    if p.feather_px > 0:
        binary = cv2.GaussianBlur(binary, (0, 0), p.feather_px)
    return np.clip(binary, 0.0, 1.0)


def binarize(mask: np.ndarray, erode_px: int = 0, threshold: float = 0.5) -> np.ndarray:
    """Hard mask ``mask > threshold``, optionally eroded: where product fidelity is measured.

    Eroding a couple of pixels keeps the measurement off the feathered seam,
    whose pixels are a legitimate mix of product and new background.
    """
    hard = (mask > threshold).astype(np.uint8)
    if erode_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        hard = cv2.erode(hard, k)
    return hard.astype(bool)

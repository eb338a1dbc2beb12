"""The classical product mask for studio catalog photos (no learned prior).

Why its own module: :mod:`stylizer.mask_fusion` builds on this estimate and
:mod:`stylizer.masks` (the public ``product_mask``) chooses between the two;
keeping the estimate apart lets both import it without an import cycle.

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
   (grey knitwear on grey, pale prints);
4. recover what has (almost) the backdrop's colour: a white T-shirt on light
   grey paper differs from it by one or two lightness units, like a soft
   shadow, so no colour threshold can tell them apart, and GrabCut's colour
   models cannot either.  What does differ is structure: the garment has a
   sharp outline and fabric texture (folds, weave), the paper and its soft
   shadows are smooth.  Regions enclosed by the product and by edges that are
   well above the backdrop's own gradient noise, and textured beyond it, are
   added to the product; smooth enclosed regions (the backdrop seen between a
   model's arm and body, a shadow between two shoes) stay background;
5. clean up (tiny specks out, tiny holes filled), then upsample and feather the
   edge so the composite has no jagged or hard seam.

A user-supplied mask (an alpha channel or a mask file) always wins: it is what
the merchant says the product is.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "ClassicalEstimate",
    "MaskParams",
    "background_model",
    "classical_mask",
    "estimate_classical",
]

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
    ``edge_factor``: an outline edge is a lightness gradient at least this many
    times the backdrop's own 99.5th-percentile gradient (its noise and grading),
    and at least ``edge_floor`` (CIELAB L units per pixel; for noiseless
    pure-white backdrops).
    ``texture_factor``: an enclosed region is fabric when its mean gradient is at
    least this many times the backdrop's median gradient.
    """

    work_side: int = 320
    border_frac: float = 0.03
    shadow_discount: float = 2.5
    min_threshold: float = 2.5
    grabcut_iters: int = 4
    min_component_frac: float = 0.0015
    max_hole_frac: float = 0.002
    feather_px: float = 1.0
    edge_factor: float = 2.0
    edge_floor: float = 0.2
    texture_factor: float = 2.0


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


@dataclass(frozen=True)
class ClassicalEstimate:
    """The classical mask with the evidence behind it, at working resolution.

    ``dist``: colour distance to the backdrop model (CIELAB, shadows discounted);
    ``t_lo``: the threshold above which a pixel differs from the backdrop;
    ``grad``: lightness gradient magnitude; ``t_edge``: gradient of an outline
    (well above the backdrop's own noise); ``texture``: mean gradient of fabric;
    ``diff``: CIELAB difference to the backdrop model (``HxWx3``, L first).
    :mod:`stylizer.mask_fusion` uses them to judge the learned prior's additions.
    """

    binary: np.ndarray
    dist: np.ndarray
    t_lo: float
    grad: np.ndarray
    t_edge: float
    texture: float
    diff: np.ndarray


def _estimate(rgb: np.ndarray, p: MaskParams) -> np.ndarray:
    """Binary product mask at working resolution (bool)."""
    return estimate_classical(rgb, p).binary


def estimate_classical(rgb: np.ndarray, p: MaskParams | None = None) -> ClassicalEstimate:
    """The classical estimate (steps 1-5 of the module doc) at ``rgb``'s resolution."""
    p = p or MaskParams()
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
    backdrop = strip & (dist < t_lo)
    gx, gy = _lightness_gradient(lab)
    grad = np.hypot(gx, gy)
    noise_g = grad[backdrop] if backdrop.sum() >= 50 else grad.ravel()
    t_edge = max(p.edge_floor, p.edge_factor * float(np.percentile(noise_g, 99.5)))
    texture = p.texture_factor * max(float(np.median(noise_g)), p.edge_floor / 8)
    if not np.any(np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD))):
        return ClassicalEstimate(
            np.ones((h, w), bool), dist, t_lo, grad, t_edge, texture, lab - bg
        )
    binary = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))
    if binary.sum() < 0.0005 * h * w:
        # Nothing stands out by colour; only an outline can still reveal a product.
        binary = np.zeros((h, w), bool)
    else:
        binary = _grabcut(rgb, gc, p)
    binary |= _enclosed_by_outline(binary, gx, gy, dist, t_lo, backdrop, p)
    return ClassicalEstimate(_clean(binary, p), dist, t_lo, grad, t_edge, texture, lab - bg)


def _grabcut(rgb: np.ndarray, gc: np.ndarray, p: MaskParams) -> np.ndarray:
    """GrabCut from the seeded labels ``gc``; the seeds themselves if it fails."""
    binary = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))
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
    opened = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return opened.astype(bool)


def _lightness_gradient(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y derivatives of CIELAB lightness (lightly smoothed), in L units per pixel."""
    g = cv2.GaussianBlur(lab[..., 0], (0, 0), 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
    return gx, gy


def _enclosed_by_outline(
    binary: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    dist: np.ndarray,
    t_lo: float,
    backdrop: np.ndarray,
    p: MaskParams,
) -> np.ndarray:
    """Product that has the backdrop's colour, found by its structure (see the module doc).

    ``backdrop`` marks border pixels known to be background; their gradients set
    the noise level, so the thresholds adapt to each photo's grain and grading;
    ``dist`` is the colour distance to the backdrop model and ``t_lo`` its threshold.

    The wall is the product found so far plus the band of strong edges.  Texture
    evidence is (a) a region the wall encloses (not touching the frame) whose
    mean gradient is well above the backdrop's, or (b) a densely lined area (a
    print or a knit on white fabric: at least 30 % thin Canny edge pixels in a
    9 px window, i.e. three or more lines, where an outline or a shadow's rim
    gives one or two).  Each piece of wall holding evidence is filled: what it
    encloses is product, except regions that look like backdrop (smooth, and
    within the colour threshold, shadows included): the backdrop between a
    model's arm and body, the shadow between two shoes.  The filled piece loses
    its outer two pixels, because an edge band straddles the true boundary and
    must not grow the mask into the backdrop (a halo); next to the product found
    by colour, backdrop-coloured pixels are that band's outer side too.
    """
    h, w = binary.shape
    grad = np.hypot(gx, gy)
    noise = grad[backdrop] if backdrop.sum() >= 50 else grad.ravel()
    t_edge = max(p.edge_floor, p.edge_factor * float(np.percentile(noise, 99.5)))
    texture = p.texture_factor * max(float(np.median(noise)), p.edge_floor / 8)
    band = (grad >= t_edge).astype(np.uint8)
    wall = cv2.morphologyEx(binary.astype(np.uint8) | band, cv2.MORPH_CLOSE, _disk(1))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(1 - wall, connectivity=4)
    area = np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    mean_grad = np.bincount(labels.ravel(), weights=grad.ravel(), minlength=n) / area
    mean_dist = np.bincount(labels.ravel(), weights=dist.ravel(), minlength=n) / area
    enclosed = ~_touches_frame(stats, h, w)
    enclosed[0] = False  # label 0 is the wall itself
    textured = enclosed & (mean_grad >= texture)
    # Thin (Canny) edges on our own derivatives (int16, in 1/100 L per pixel) count lines.
    dx = np.clip(np.rint(gx * 100), -32767, 32767).astype(np.int16)
    dy = np.clip(np.rint(gy * 100), -32767, 32767).astype(np.int16)
    lines = cv2.Canny(dx, dy, 50 * t_edge, 100 * t_edge, L2gradient=True) > 0
    evidence = textured[labels] | (cv2.blur(lines.astype(np.float32), (9, 9)) >= 0.3)
    if not evidence.any():
        return np.zeros_like(binary)
    n_parts, parts = cv2.connectedComponents(wall | evidence.astype(np.uint8), connectivity=8)
    keep = np.zeros(n_parts, bool)
    keep[np.unique(parts[evidence])] = True
    keep[0] = False
    backdrop_like = enclosed & ~textured & (mean_dist < t_lo)
    inside = enclosed & ~backdrop_like
    kept = keep[parts]
    interior = evidence | (inside[labels] & _within(kept, labels, n))
    silhouette = (kept | interior).astype(np.uint8)
    added = cv2.erode(silhouette, _disk(2)) > 0
    # Edge band is only kept next to new product (a white garment's own outline and
    # folds); elsewhere it is a shadow's rim under a hem or the outer side of the
    # colour-found product's edge, which GrabCut has already judged.
    near_binary = cv2.dilate(binary.astype(np.uint8), _disk(4)) > 0
    near_new = cv2.dilate((interior & ~near_binary).astype(np.uint8), _disk(8)) > 0
    added &= ~(kept & ~interior & ~binary & ~near_new)
    added &= ~(near_binary & ~binary & (dist < t_lo) & ~near_new)
    # Slivers a few pixels wide between parts of new product (a shaded strip along a
    # white garment's side) are the garment too.
    new = (added & ~binary).astype(np.uint8)
    added |= (cv2.morphologyEx(new, cv2.MORPH_CLOSE, _disk(2)) > 0) & ~binary
    # A smooth patch walled in on (nearly) all sides by new product is that garment's
    # flat part (white trousers between their prints), however backdrop-like it looks.
    return added | _holes_enclosed_by(added & ~binary, binary | added, p)


def _holes_enclosed_by(added: np.ndarray, mask: np.ndarray, p: MaskParams) -> np.ndarray:
    """Holes of ``mask`` whose rim is at least 75 % ``added`` (a smooth patch inside a garment)."""
    h, w = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    out = np.zeros_like(mask)
    candidates = ~_touches_frame(stats, h, w) & (
        stats[:, cv2.CC_STAT_AREA] > p.max_hole_frac * h * w
    )
    candidates[0] = False  # label 0 is the mask itself
    for i in np.flatnonzero(candidates):
        x, y, bw, bh = stats[i, :4]
        y0, y1, x0, x1 = max(y - 1, 0), min(y + bh + 1, h), max(x - 1, 0), min(x + bw + 1, w)
        hole = labels[y0:y1, x0:x1] == i
        rim = (cv2.dilate(hole.astype(np.uint8), _disk(1)) > 0) & ~hole
        if added[y0:y1, x0:x1][rim].mean() >= 0.75:
            out[y0:y1, x0:x1] |= hole
    return out


def _within(region: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Per pixel: does its component (of ``labels``) touch ``region`` (8-neighbours)?"""
    grown = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    touching = np.zeros(n, bool)
    touching[np.unique(labels[grown & ~region])] = True
    return touching[labels]


def _touches_frame(stats: np.ndarray, h: int, w: int) -> np.ndarray:
    """Per component (``connectedComponentsWithStats`` rows): does it touch the image border?"""
    x, y = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    return (
        (x == 0)
        | (y == 0)
        | (x + stats[:, cv2.CC_STAT_WIDTH] == w)
        | (y + stats[:, cv2.CC_STAT_HEIGHT] == h)
    )


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def classical_mask(image: np.ndarray, p: MaskParams) -> np.ndarray:
    """The classical estimate at ``p.work_side``, upsampled to the image and feathered."""
    h, w = image.shape[:2]
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

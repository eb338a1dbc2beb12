"""Cast shadows along a product's edge, taken out of a soft mask at full size.

The fused decision (:mod:`stylizer.mask_fusion`) is made at a working resolution
of 320 px, where the shadow a product leaves on the studio paper beside it is a
pixel or two wide and its outline walls it in: the mask keeps it, and a render
shows it as a grey band of old paper between the product and the new scene.
At full size the shadow can be told from the product by what it is (the paper,
darker, with the paper's tint) and by its profile across the edge; these rules
look only within a few pixels of the mask's edge and drop only what connects to
the open backdrop (or, for shade beside a coloured product, to a hole in the mask).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from stylizer.mask_classical import _disk, _lab

__all__ = ["SHADOW_MAX_DROP", "drop_edge_shadows"]

#: Largest lightness drop (CIELAB L) of a cast shadow on studio paper.
SHADOW_MAX_DROP = 30.0
#: Largest share of neutral pixels in the product around an edge pixel for the chroma cue.
_MAX_NEUTRAL_SHARE = 0.15
#: Outer depth (px, full size) of the mask in which a fading shadow beside a light product
#: is looked for, and how much darker than the paper (CIELAB L) that product may be.
_FADE_DEPTH = 2
_FADE_MAX_DARK = 8.0
#: Roughest (median |Laplacian| of CIELAB L, sigma 0.5, at 384 px) a wide shadow band beside a
#: light product may be: paper is 0.03, the white trousers' shadow band 0.9-1.0, a light-grey
#: heather hood's shaded fold 2.0.  Also the roughest (median) a light product around a fading
#: shadow may be: on a textured one the texture's own dark pixels make the dip.
_SHADOW_MAX_LAP = 1.5


def drop_edge_shadows(
    image: np.ndarray, alpha: np.ndarray, bg_lab: np.ndarray, t_lo: float, reach: int
) -> np.ndarray:
    """Take the thin cast shadow along a product's edge out of ``alpha`` (full size).

    A shadow strip a few pixels wide beside a legging or under an earring is
    narrower than a working pixel or two, so the decision at working resolution
    keeps it, and its outline (the product's edge on one side, the shadow's
    rim on the other) walls it in.  At full size it is plain to see: the
    shadow is the paper, darker, with the paper's chroma, while the product
    next to it has chroma of its own, or (a black product) is darker than any
    shadow.  So within ``reach`` px inside the edge, a pixel darker than the
    backdrop, connected to the outside through such pixels (by the first cue
    below, to a hole in the mask too), is backdrop when

    * beside a coloured product, it has under 40 % of the chroma of the
      product around it (and under ``1.5 t_lo`` away from the paper's); or
      under half of it (the midpoint of the blurred edge) while darker, by
      more than ``t_lo``, than the blend of product and paper that its chroma
      implies: the rest of such a pixel is shadow, not paper.  That is a pale
      pink legging's inner edge, where the shadow is as dark as the fabric and
      only chroma tells them apart.  A pixel lighter than that blend (a pale
      waistband that has less chroma than the lace below it) is left alone;
    * beside a product darker than any shadow (its lightest pixel within the
      window more than ``SHADOW_MAX_DROP`` below the paper: black trousers),
      it is neutral and lighter than midway between the product around it and
      the paper: the outer half of the edge, or the penumbra a side light
      leaves beside each leg.  A product with light parts near its edge (a
      zebra-striped shirt, silver crayons) has its lightest pixel near the
      paper's, so its edge is left alone.

    Beside a white or light-grey product, which has neither cue, the shadow's
    outer slope is taken out by its profile across the edge
    (:func:`_fading_edge_shadow`), and a band of it too wide and too smooth to
    be the product's own dark outline as a whole (:func:`_wide_edge_shadow`).
    """
    lab = _lab(image)
    d = lab - bg_lab
    chroma = np.hypot(d[..., 1], d[..., 2])
    core = (cv2.erode((alpha >= 0.99).astype(np.uint8), _disk(reach)) > 0).astype(np.float32)
    k = (4 * reach + 1, 4 * reach + 1)
    weight = cv2.boxFilter(core, -1, k, normalize=False)
    local = cv2.boxFilter(chroma * core, -1, k, normalize=False) / np.maximum(weight, 1.0)
    # The product's lightness around (mean, as a difference to the paper) and its lightest pixel.
    local_l = cv2.boxFilter(d[..., 0] * core, -1, k, normalize=False) / np.maximum(weight, 1.0)
    lightest = cv2.dilate(np.where(core > 0, d[..., 0], -1e3).astype(np.float32), np.ones(k, np.uint8))
    edge = (alpha > 0.0) & (core == 0) & (weight > 0) & (d[..., 0] < 0.0)
    share = chroma / np.maximum(local, 1e-3)  # the product's share of a product/paper blend
    shaded_blend = (share < 0.5) & (d[..., 0] < share * local_l - t_lo)
    # Share of the product around that is itself neutral (white fabric between a print's
    # navy sharks): there a neutral edge pixel is more of that fabric, not a shadow.
    neutral = cv2.boxFilter(core * (chroma < 1.5 * t_lo), -1, k, normalize=False)
    neutral /= np.maximum(weight, 1.0)
    coloured = (
        (local >= 3.0 * t_lo)
        & (neutral < _MAX_NEUTRAL_SHARE)
        & (chroma < 1.5 * t_lo + 0.2 * local)
        & ((share < 0.4) | shaded_blend)
        & (d[..., 0] > -SHADOW_MAX_DROP)
    )
    dark = (lightest < -SHADOW_MAX_DROP) & (chroma < 1.5 * t_lo) & (d[..., 0] > 0.5 * local_l)
    shade = edge & dark
    rough = _roughness(lab[..., 0])
    # Share of the product around that is rough: over a half, its median roughness is over
    # _SHADOW_MAX_LAP (a heather's texture), where a print's sparse edges on smooth fabric are not.
    rough_share = cv2.boxFilter(
        core * (rough >= _SHADOW_MAX_LAP), -1, k, normalize=False
    ) / np.maximum(weight, 1.0)
    shade |= _fading_edge_shadow(
        alpha, d[..., 0], chroma, core, edge, local_l, rough_share, reach, t_lo
    )
    shade |= _wide_edge_shadow(rough, d[..., 0], chroma, edge, local, local_l, reach, t_lo)
    tinted_out = edge & coloured
    if not (shade.any() or tinted_out.any()):
        return alpha
    # Outside means the open backdrop around the product (reaching the frame), not a hole
    # in the mask: beside a hole the mask may have got wrong, a white sole's shaded rim is
    # as neutral as a shadow.  Only the chroma cue, which asks for a coloured product
    # around, also reaches into holes: the shaded paper seen through a pink scarf's loop
    # is neutral beside the knit, as a shadow outside is.
    n, labels = cv2.connectedComponents((alpha <= 0.0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = (alpha <= 0.0) & np.isin(labels, border[border > 0])
    drop = _reaching(shade, outside) | _reaching(tinted_out, alpha <= 0.0)
    out = alpha.copy()
    out[drop] = 0.0
    # Soften the new edge only (one pixel around what was dropped), never raising alpha.
    near = cv2.dilate(drop.astype(np.uint8), _disk(1)) > 0
    out[near] = np.minimum(cv2.GaussianBlur(out, (0, 0), 0.6)[near], alpha[near])
    return out


def _reaching(shade: np.ndarray, backdrop: np.ndarray) -> np.ndarray:
    """The pixels of ``shade`` connected (4-neighbours, through ``shade``) to ``backdrop``."""
    n, labels = cv2.connectedComponents((shade | backdrop).astype(np.uint8), connectivity=4)
    touching = np.zeros(n, bool)
    touching[np.unique(labels[backdrop])] = True
    return shade & touching[labels]


def _roughness(lightness: np.ndarray) -> np.ndarray:
    """|Laplacian| of CIELAB L after a blur of sigma 0.5: near 0 on paper and smooth fabric."""
    blurred = cv2.GaussianBlur(lightness.astype(np.float32), (0, 0), 0.5)
    return np.abs(cv2.Laplacian(blurred, cv2.CV_32F))


def _fading_edge_shadow(
    alpha: np.ndarray,
    dl: np.ndarray,
    chroma: np.ndarray,
    core: np.ndarray,
    edge: np.ndarray,
    local_l: np.ndarray,
    rough_share: np.ndarray,
    reach: int,
    t_lo: float,
) -> np.ndarray:
    """The outer slope of a shadow beside a white or light-grey product (part of ``edge``).

    Neither chroma nor darkness tells such a product from its shadow, but the
    profile across the edge does: the shadow is darkest where it meets the
    product (a line darker than the product and the paper) and fades into the
    paper further out, while a light product's own edge only blends from its
    lightness to the paper's.  Ring by ring outwards from ``core``, a neutral
    pixel darker than the paper counts when it is lighter, by more than
    ``t_lo``, than the darkest pixel within 2 px closer to the product, and
    that darkest pixel is itself darker, by more than ``t_lo``, than the
    product around (the dip).  Only the outer ``_FADE_DEPTH`` px of the mask
    are looked at: deeper in, a print or a fold varies as much.  The product
    around must be light (within ``_FADE_MAX_DARK`` of the paper): beside a
    grey or dark one, :func:`drop_edge_shadows`' other cues apply.  And it must
    be smooth: under half of it (``rough_share``) rougher than
    ``_SHADOW_MAX_LAP``, so that its median roughness is under that.  On a
    textured one (a light-grey heather) the texture's own dark pixels make the
    dip: without this the rule took 76 px of a hood's top edge, which a render
    showed as a silhouette change of 1 %, where a print's sparse edges on
    smooth white fabric leave the median low.  On the 60 reference photos
    (2026-12-05, fused-13) it takes 818 px of shadow out beside white trousers,
    a white tee, a white shirt, a white sole and a hat, and 149 px of product edge
    with it (a printed tee's sleeve and the hood's top, 39 px, where the heather
    is smoother), against 840 and 208 px without the smoothness test.
    """
    dist = cv2.distanceTransform((core == 0).astype(np.uint8), cv2.DIST_L2, 3)
    k = np.ones((5, 5), np.uint8)
    fading = np.zeros(dl.shape, bool)
    for ring in range(1, 3 * reach + 1):
        darkest = cv2.erode(np.where(dist < ring - 0.5, dl, 1e3).astype(np.float32), k)
        here = (dist >= ring - 0.5) & (dist < ring + 0.5)
        fading |= here & (dl > darkest + t_lo) & (darkest < local_l - t_lo)
    fading &= (
        edge
        & (chroma < 1.5 * t_lo)
        & (dl < -t_lo)
        & (dl > -SHADOW_MAX_DROP)
        & (local_l > -_FADE_MAX_DARK)
        & (rough_share < 0.5)
        & (cv2.dilate((alpha < 0.5).astype(np.uint8), _disk(_FADE_DEPTH)) > 0)
    )
    if not fading.any():
        return fading
    # With it goes the faint paper-coloured fringe of the soft edge just beyond, through
    # which the shadow reaches the open backdrop.
    paper = (alpha > 0.0) & (alpha < 0.5) & (np.abs(dl) < t_lo) & (chroma < 1.5 * t_lo)
    return fading | (paper & (cv2.dilate(fading.astype(np.uint8), _disk(2)) > 0))


def _wide_edge_shadow(
    rough: np.ndarray,
    dl: np.ndarray,
    chroma: np.ndarray,
    edge: np.ndarray,
    local: np.ndarray,
    local_l: np.ndarray,
    reach: int,
    t_lo: float,
) -> np.ndarray:
    """A cast shadow band, wide and smooth, beside a white or light-grey product (part of ``edge``).

    A garment with some height (a waistband, a fold over a trouser gap) throws
    a band of shadow 4-9 px wide at 384 px beside its edge, as dark as the
    product's own outline and darker than the paper by up to 20 L: the fading
    rule (:func:`_fading_edge_shadow`) takes only its outer slope, so the
    band stays product.  A light garment's own dark outline (a white tee's
    rolled edge, its seam) is as dark but only 1-3 px across, and a light
    grey heather's shaded fold is as wide but textured.  So neutral pixels
    more than ``3 t_lo`` below the paper, beside a light neutral product,
    count when they survive an opening by a square ``reach - 1`` px wide and
    their connected region is as smooth as paper in a gentle gradient
    (median |Laplacian| of L under ``_SHADOW_MAX_LAP``).  On the 60 reference
    photos it takes out 88 px of the white trousers' shadow band along the
    gap; it also takes 13 px of a white tee's hem corner and 7 px of a printed
    tee's sleeve, and no other mask changes.
    """
    zone = (
        edge
        & (chroma < 1.5 * t_lo)
        & (dl < -3.0 * t_lo)
        & (dl > -SHADOW_MAX_DROP)
        & (local_l > -_FADE_MAX_DARK)
        & (local < 3.0 * t_lo)
    )
    side = max(reach - 1, 2)
    wide = cv2.morphologyEx(zone.astype(np.uint8), cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    n, labels = cv2.connectedComponents(wide, connectivity=8)
    if n < 2:
        return wide > 0
    smooth = np.zeros(n, bool)
    smooth[1:] = np.asarray(ndimage.median(rough, labels, np.arange(1, n))) < _SHADOW_MAX_LAP
    return smooth[labels]

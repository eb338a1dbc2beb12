"""The fused product mask: classical backdrop model + learned salient prior, refined at full size.

Each half covers the other's failures:

* the classical estimate (:func:`stylizer.mask_classical.estimate_classical`) is exact
  where the product differs from the backdrop in colour, and keeps enclosed
  backdrop out (the gap between trouser legs stays background), but loses
  product parts of the backdrop's own colour (white fabric on light grey) when
  their outline is faint;
* the salient prior (:mod:`stylizer.saliency`) finds such parts from shape, but
  fills enclosed backdrop and pads the silhouette by a few pixels.

So the prior may only *add* regions the classical mask missed, and each added
region must prove it is product and not backdrop:

1. thin slivers along the classical edge (the prior's padding) are opened away,
   while a thin part away from that edge (a hat's tie) is kept to be judged; a
   region follows the prior down to where it is unsure (0.3: white fabric between
   a printed tee's motifs), but not into a cast shade nor across a narrow gap
   between classical parts, which the prior bridges (paper between two crayons);
2. a region that meets the open backdrop without an outline between them along
   more than three quarters of the contact is backdrop continuing inward
   (padding, or the gap between two legs that is open at the hem): rejected.
   On the 60 reference photos such regions meet it with no outline at all,
   while a white tee's back collar, whose top edge is faint, has an outline
   along 47 % of the contact.  Nor is a region that is mostly paper-coloured
   pixels in a gap narrower than ``_GAP_BRIDGE`` between classical parts, where it
   meets the open backdrop anywhere without an outline: the paper between two
   crayons, which the prior is sure of too;
3. a region walled in by product or outline (a handle's inside, a white sleeve)
   is kept unless it looks like backdrop: within the backdrop's colour threshold
   *and* as smooth as the backdrop.  A hole of that kind larger than
   ``max_hole_frac`` of the frame is enclosed backdrop (the inside of a bag
   handle) and stays background; a textured one is fabric.

4. backdrop-coloured pixels inside the classical mask where the prior is low
   are enclosed backdrop GrabCut closed over (the gap between trouser legs,
   the inside of a scarf's loop): carved out.  So is such a shade that opens onto
   the backdrop from the product's edge (the shadow beside a hat's thin tie),
   where the prior sees clearly more product around it than in it.

Classical regions the prior gives no support at all (a prop, a detached
shadow) are dropped when the prior is confident elsewhere, and only while
small next to the product.

The binary decision is made at the working resolution (320 px long side); the
edge is then refined at the output resolution with a guided filter (He et al.,
box-filter form) whose guide is the photo itself, so the soft edge follows the
real outline instead of the upsampled staircase, and is neither padded nor cut.
Last, :func:`stylizer.edge_shadows.drop_edge_shadows` takes out, at full size,
the cast-shadow strip a few pixels wide that a coloured or a dark product leaves
on the paper beside it, which the working resolution cannot resolve, and beside
a white or light-grey product the outer slope of its shadow, told by the profile
across the edge (a dark contact line, then a fade into the paper), and a shadow
band too wide and too smooth to be the product's own dark outline.  (A shadow of
the paper's own tint beside a product part tinted otherwise, too faint for any
of these, is carved at the working size: :func:`_carve_paper_shade`.)
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from stylizer.edge_shadows import SHADOW_MAX_DROP, drop_edge_shadows
from stylizer.mask_classical import ClassicalEstimate, MaskParams, _disk, _lab, estimate_classical

__all__ = ["MASK_VERSION", "fuse", "fused_mask", "guided_filter", "refine_edge"]

#: Bump when the mask a photo gets changes: it keys the on-disk mask cache.
MASK_VERSION = "fused-16"

#: Prior probability at which a pixel counts as salient.
_PRIOR_ON = 0.5
#: Prior probability down to which a thin part seen by the prior elsewhere is followed.
_THIN_ON = 0.3
#: Prior probability down to which an added region follows the prior where it is not a cast
#: shade (the white fabric along a printed tee's sides; see :func:`fuse`).
_UNSURE_ON = 0.3
#: Width (px, working resolution) of a gap between classical parts that such pixels do not fill.
_GAP_BRIDGE = 15
#: Share of an added region, at or above which, in such a gap and of the paper's colour, it is
#: paper seen between two parts where it also meets the open backdrop with no outline there
#: (crayons lying side by side: 0.84; on the 60 reference photos, the most of any other region
#: that meets the backdrop is 0.64, a white trouser part; walled-in white reaches 0.73).
_PAPER_GAP_SHARE = 0.75
#: Smallest mean colour distance from the backdrop (in ``t_lo``) of such a thin part.
_THIN_MIN_DIST = 0.5
#: How much less salient than the product around it a carved region must be.
_PRIOR_GAP = 0.3
#: Prior probability below which even a shaded neutral region is not product.
_PRIOR_NONE = 0.1
#: Pixels (working resolution) a carved hole extends into backdrop-coloured neighbours.
_HOLE_GROW = 4
#: Smallest enclosed-backdrop region carved out of the mask (fraction of the frame).
_MIN_CARVE_FRAC = 0.001
#: Largest enclosed paper-coloured region kept as product where the prior sees nothing around it.
_BLIND_HOLE_FRAC = 0.008
#: Largest share of the product's median chroma that a cast shadow's tint reaches: a shadow
#: tinted by light the product reflects is no more coloured than the product itself (up to
#: 0.82 of it beside gold earrings, whose deepest shadow 0.7 left in the mask).
_TINT_SHARE = 1.0
#: Radius of the opening a tinted shadow must survive (working pixels): a strip narrower
#: than about 5 px along the product's edge is as likely its own shaded rim, and a strip
#: of shadow that thin is left to the full-size edge rules.
_TINT_OPEN = 2
#: Deepest (CIELAB L below the paper) a tinted shadow gets right under a small part (the
#: clutch of an earring: 30-36, where ``SHADOW_MAX_DROP`` bounds a shadow on open paper), and
#: the share of the product's chroma it must stay under there: the metal's own shaded rim is
#: as dark, but as coloured as the metal (0.8-1.0 of its median chroma, and over).
_TINT_DEEP_DROP = 36.0
_TINT_DEEP_SHARE = 0.8
#: Largest area of a tinted shadow, as a share of the product the prior is sure of (the
#: earrings' shadows: 0.02-0.06; the bra's cups, which the prior misses: 0.3-6, and which
#: the prior's gap test of fused-16 already keeps; this bound keeps a part the prior gives
#: nothing beside a part it is sure of, where that test would not).
_TINT_MAX_SHARE = 0.25
#: A shadow of the paper's own tint beside a tinted product part (:func:`_carve_paper_shade`):
#: the region's median chroma distance from the paper under this share of ``t_lo``, the
#: product beside it at least ``_TINTED_WALL`` of it, and this share of its rim paper-like.
_PAPER_TINT = 0.2
_TINTED_WALL = 0.5
_PAPER_RING = 0.6
#: Fraction of an added region's contact with open backdrop that may lack an outline.  The
#: shares on the 60 reference photos are 0-0.5 (walled in) or 1.0 (padding, an open gap), and
#: 0.53 for a white tee's back collar: near the middle of that gap, not at its edge.
_MAX_OPEN_CONTACT = 0.75
#: Smallest long side (px) at which thin edge shadows are looked for: below it a strip of a
#: few pixels at 384 px is sub-pixel, while the fixed band would reach deep into a small
#: product (a 96 px tote's cream stripes were taken for shadow: product dE 8.3).
_MIN_SHADOW_SIDE = 192


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` steered by ``guide`` (colour, ``HxWx3`` in [0, 1]).

    The colour guided filter of He, Sun and Tang (2013) written with box
    filters: O(pixels) whatever the radius.  Per window, ``src`` is modelled as
    an affine function of the guide's colour, so a mask edge moves to where the
    photo's colour changes: a grey-only guide could not place the edge of a red
    product on a same-lightness backdrop.
    """
    g = guide.astype(np.float32)
    p = src.astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT)

    mean_g = box(g)
    mean_p = box(p)
    cov = box(g * p[..., None]) - mean_g * mean_p[..., None]
    var = np.empty(g.shape[:2] + (3, 3), np.float32)
    for i in range(3):
        for j in range(i, 3):
            v = box(g[..., i] * g[..., j]) - mean_g[..., i] * mean_g[..., j]
            var[..., i, j] = var[..., j, i] = v
    var += eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var, cov[..., None])[..., 0]
    b = mean_p - (a * mean_g).sum(-1)
    return (box(a) * g).sum(-1) + box(b)


def refine_edge(image: np.ndarray, coarse: np.ndarray, radius: int, eps: float = 4e-4) -> np.ndarray:
    """Soft alpha at ``image``'s size from a coarse mask (float, any size), following real edges.

    The coarse mask is resized bilinearly (its staircase is at most a working
    pixel), the guided filter pulls its edge onto the photo's outline, and a
    gain of 2 about 0.5 turns the filter's wide ramp into an edge of a pixel or
    two, so that a ramp does not leave a band of half-kept backdrop (a rim).
    """
    h, w = image.shape[:2]
    m = coarse.astype(np.float32)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    if m.min() >= 1.0 or m.max() <= 0.0:
        return np.clip(m, 0.0, 1.0)
    q = guided_filter(image.astype(np.float32) / 255.0, m, radius, eps)
    alpha = np.clip((q - 0.5) * 2.0 + 0.5, 0.0, 1.0)
    # Far from the coarse edge the filter has nothing to move: keep the decision exact.
    far = cv2.erode((m > 0.5).astype(np.uint8), _disk(radius + 1)) > 0
    alpha[far] = 1.0
    outside = cv2.dilate((m > 0.5).astype(np.uint8), _disk(radius + 1)) == 0
    alpha[outside] = 0.0
    # A photo's edge is a pixel or two of mixed colour (lens, demosaicing); the
    # decontaminated composite un-mixes such pixels, so a soft edge leaves no rim.
    return np.clip(cv2.GaussianBlur(alpha, (0, 0), 0.7), 0.0, 1.0)


def _components(binary: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    return cv2.connectedComponentsWithStats(binary.astype(np.uint8), connectivity=8)[:3]


def _open_contact(
    labels: np.ndarray, stats: np.ndarray, i: int, backdrop: np.ndarray, walled: np.ndarray
) -> tuple[tuple[slice, slice], np.ndarray, float | None]:
    """Component ``i``'s crop, its pixels there, and the share of its contact with
    ``backdrop`` that has no outline (None when it does not touch the backdrop)."""
    h, w = labels.shape
    x, y, bw, bh = stats[i, :4]
    crop = (slice(max(y - 8, 0), min(y + bh + 8, h)), slice(max(x - 8, 0), min(x + bw + 8, w)))
    region = labels[crop] == i
    ring = (cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & ~region
    contact = ring & backdrop[crop]
    if contact.sum() < 3:
        return crop, region, None
    return crop, region, float((~walled[crop][contact]).mean())


def _cast_shade(est: ClassicalEstimate) -> np.ndarray:
    """Neutral shade darker than the paper (over ``2 t_lo`` down, chroma under ``1.5 t_lo``):
    a cast shadow, which the prior rates as product where it hugs a pale part."""
    chroma = np.hypot(est.diff[..., 1], est.diff[..., 2])
    return (est.diff[..., 0] < -2.0 * est.t_lo) & (chroma < 1.5 * est.t_lo)


def _thin_parts(est: ClassicalEstimate, prior: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Thin product parts (a hat's pale tie) that the opening of :func:`fuse` erased.

    The opening that takes the prior's padding off the classical edge also takes
    anything narrower than itself: a tie 3 px wide at the working size.  Padding
    lies along the classical edge, so away from it (over 2 px) the prior's thin
    regions are kept to be judged like any other added region, followed down to
    ``_THIN_ON`` where they reach ``_PRIOR_ON`` somewhere (the prior is unsure of
    a pale tie along much of its length), but never into a neutral shade darker
    than the paper (the tie's cast shadow, which the prior rates above the tie)
    nor as a region of the paper's own colour (paper seen between two crayons).
    On the 60 reference photos this recovers 372 px of a hat's right tie (its
    shadow is not followed: 10 px more paper), 105 px of a printed tee's neckband
    and 11 px of a sneaker's collar lining, and changes no other mask.
    """
    c = est.binary
    far = cv2.dilate(c.astype(np.uint8), _disk(2)) == 0
    thin = (prior >= _THIN_ON) & ~c & far & ~gain & ~_cast_shade(est)
    # An opening by 2 x 2 (lines a pixel wide go); OpenCV's even kernel needs the dilation
    # anchored opposite to the erosion, or the result shifts by a pixel.
    k = np.ones((2, 2), np.uint8)
    thin = cv2.dilate(cv2.erode(thin.astype(np.uint8), k), k, anchor=(0, 0)) > 0
    n, labels, _ = _components(thin)
    seen = np.bincount(labels[thin & (prior >= _PRIOR_ON)], minlength=n) > 0
    size = np.maximum(np.bincount(labels.ravel(), minlength=n), 1)
    colour = np.bincount(labels.ravel(), est.dist.ravel(), n) / size
    keep = seen & (colour >= _THIN_MIN_DIST * est.t_lo)
    keep[0] = False
    return keep[labels]


def fuse(est: ClassicalEstimate, prior: np.ndarray, p: MaskParams) -> np.ndarray:
    """Binary product mask (working resolution) from the classical estimate and the prior."""
    c = est.binary
    h, w = c.shape
    area = h * w
    salient = prior >= _PRIOR_ON
    if salient.mean() < 0.002:
        return c  # the network sees no object: nothing to add or to question
    out = c.copy()
    # An outline between a region and the backdrop: a strong gradient within a pixel.
    walled = cv2.dilate((est.grad >= est.t_edge).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    # (1) The prior's padding is a sliver along the classical edge: open it away.
    gain = cv2.morphologyEx((salient & ~c).astype(np.uint8), cv2.MORPH_OPEN, _disk(2)) > 0
    # Thin parts are found beside the sure gain, as before fused-11: beside the larger gain
    # below, the hat's tie moved by 84-87 px (measured), for better and worse.
    thin = _thin_parts(est, prior, gain)
    # Where the prior is unsure (white fabric between a printed tee's dark motifs along its
    # sides, a sneaker's white collar lining: 0.3-0.5), its pixels join the region they
    # extend and are judged with it, unless they are a cast shadow's neutral shade or lie
    # in a gap narrower than _GAP_BRIDGE between classical parts, which the prior bridges
    # (the paper between two crayons lying side by side).
    bridged = cv2.morphologyEx(c.astype(np.uint8), cv2.MORPH_CLOSE, _disk(_GAP_BRIDGE // 2)) > 0
    unsure = (prior >= _UNSURE_ON) & ~_cast_shade(est) & ~bridged
    paper_gap = bridged & (est.dist < est.t_lo)
    gain = cv2.morphologyEx(((salient | unsure) & ~c).astype(np.uint8), cv2.MORPH_OPEN, _disk(2)) > 0
    gain |= thin
    n, labels, stats = _components(gain)
    for i in range(1, n):
        crop, region, open_share = _open_contact(labels, stats, i, ~c & ~salient, walled)
        # (2) Backdrop continuing inward with no outline: padding or an open gap.
        if open_share is not None and open_share > _MAX_OPEN_CONTACT:
            continue
        # (2b) Paper seen between two parts lying side by side, which the prior is sure of
        # too (the middle of the gap between two crayons): mostly the paper's colour, in a
        # gap narrower than _GAP_BRIDGE, and open to the backdrop somewhere.  White fabric
        # between dark motifs is walled in (open share 0), or it would be lost here too.
        open_somewhere = open_share is not None and open_share > 0.0
        if open_somewhere and float(paper_gap[crop][region].mean()) >= _PAPER_GAP_SHARE:
            continue
        # (3) Enclosed: product unless it looks like backdrop and is a real hole.
        backdrop_like = (
            float(est.dist[crop][region].mean()) < est.t_lo
            and float(np.median(est.grad[crop][region])) < est.texture
        )
        if backdrop_like and stats[i, cv2.CC_STAT_AREA] > p.max_hole_frac * area:
            continue
        out[crop] |= region
    # (4) Enclosed backdrop the classical mask kept (GrabCut closing over the gap
    # between trouser legs, the inside of a scarf's loop, a shadow under an
    # earring): backdrop-coloured, or a neutral shade darker than the backdrop,
    # and not salient.  A backdrop-coloured product part (a white band on a
    # sleeve) looks the same to colour, and the prior may miss it; but then it
    # misses the product around it too.  So a region is carved only where the
    # prior sees the product around it and leaves it out: a deliberate hole.
    chroma = np.hypot(est.diff[..., 1], est.diff[..., 2])
    flat_colour = est.dist < est.t_lo
    near_colour = est.dist < 2.0 * est.t_lo  # backdrop in the shade of a handle or a hem
    shade = (est.diff[..., 0] < -2.0 * est.t_lo) & (chroma < 2.0 * est.t_lo) & (prior < _PRIOR_NONE)
    carve = cv2.morphologyEx((out & (flat_colour | shade)).astype(np.uint8), cv2.MORPH_OPEN, _disk(1))
    n, labels, stats = _components(carve)
    for i in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= _MIN_CARVE_FRAC * area) + 1:
        crop, region, open_share = _open_contact(labels, stats, i, ~out, walled)
        ring = (cv2.dilate(region.astype(np.uint8), _disk(6)) > 0) & ~region & out[crop]
        around = float(np.median(prior[crop][ring])) if ring.any() else 0.0
        inside = float(prior[crop][region].mean())
        # Walled in by product on every side, with the backdrop's colour, and not salient:
        # the inside of a handle, however the prior rates the product around it.  (Not
        # "smooth": the inside of a handle is shaded by the handle and the bag.)
        # (Where the prior fills a hole too, as it does a mug's handle, nothing here can
        # tell it from a white print walled in by a dark garment: it stays product.)
        # Either way the wall must look unlike the paper: a patch of white sole walled in
        # by more white sole (the paper's colour, and the prior blind to it) is product.
        wall = (cv2.dilate(region.astype(np.uint8), _disk(3)) > 0) & ~region & out[crop]
        wall_differs = wall.any() and float(flat_colour[crop][wall].mean()) < 0.5
        paper = float(flat_colour[crop][region].mean()) >= 0.7
        # Where the prior sees nothing around the region either (a white platform sole:
        # 0.00 around and in) it has no say, and a small patch of paper colour walled in
        # by product is as likely the product's own white; a large one is still backdrop
        # (between the cups of a bra that fills the frame, which the prior misses whole).
        prior_blind = around < _PRIOR_NONE and stats[i, cv2.CC_STAT_AREA] < _BLIND_HOLE_FRAC * area
        enclosed_hole = open_share is None and paper and inside < _PRIOR_ON and not prior_blind
        deliberate = around >= _PRIOR_ON and inside <= around - _PRIOR_GAP
        # A shadow fades into the paper (beside it, or, inside a closed trouser gap, into
        # the paper-coloured part of the region itself); a shaded region that meets
        # nothing paper-like, only edges and product, is a grey part with its own outline
        # (a sole under a shoe; the prior may leave it out as it would a hole).
        rim = (cv2.dilate(region.astype(np.uint8), _disk(2)) > 0) & ~region
        into_paper = _into_paper(rim, crop, out, near_colour, walled)
        fades = max(float(flat_colour[crop][region].mean()), into_paper)
        # (A shadow also darkens by degrees, where a sole is one even grey.)
        spread = float(np.std(est.diff[..., 0][crop][region]))
        # Inside the mask, outline and all; or its rim outside the mask is an outline (a
        # sole along the bottom of a shoe: drawn against the paper by its own edge, where a
        # shadow fades into it).
        outside_rim = rim & ~out[crop]
        sealed = float(out[crop][rim].mean()) >= 0.9 or (
            outside_rim.any() and float(walled[crop][outside_rim].mean()) >= 0.9
        )
        # An even grey: a sole's shading and outline spread its lightness by a few t_lo at
        # most, a shaded gap between dark legs by several times more (15 vs 5.7 on a sole).
        grey_part = not paper and sealed and fades < 0.2 and spread < 3.0 * est.t_lo
        # A cast shadow hanging from the product's edge into the open backdrop (beside a
        # hat's thin tie): mostly neutral shade, no darker than a shadow gets.  The prior is
        # unsure of a thin part such a shadow hangs from (0.4 on a pale tie, so "around" is
        # under _PRIOR_ON), so here it need only see clearly more product around the region
        # than in it; a part it misses altogether stays (the shaded end of a white platform
        # sole: 0.01 around it).
        attached_shadow = (
            open_share is not None
            and inside <= around - _PRIOR_GAP
            and float(shade[crop][region].mean()) >= 0.7
            and float(np.percentile(est.diff[..., 0][crop][region], 5)) > -SHADOW_MAX_DROP
        )
        if wall_differs and not grey_part and (enclosed_hole or deliberate or attached_shadow):
            # The prior's blur reaches a few pixels into a hole from its rim, where the
            # handle's shade darkens the paper: take the nearly backdrop-coloured pixels
            # next to the carved region too (a bounded step, so it cannot run into
            # white fabric beyond the hole's edge).
            grown = cv2.dilate(region.astype(np.uint8), _disk(_HOLE_GROW)) > 0
            out[crop] &= ~(region | (grown & near_colour[crop]))
    _carve_tinted_shadows(est, prior, out, walled, chroma, near_colour)
    _carve_paper_shade(est, prior, out, walled, chroma, near_colour)
    # Classical parts with no support from a confident prior: a prop or a detached shadow.
    n, labels, stats = _components(out)
    if n > 2:
        total = stats[1:, cv2.CC_STAT_AREA].sum()
        peak = np.zeros(n, np.float32)
        np.maximum.at(peak, labels.ravel(), prior.ravel())
        for i in range(1, n):
            if peak[i] < 0.15 and stats[i, cv2.CC_STAT_AREA] < 0.25 * total:
                out[labels == i] = False
    return out


def _into_paper(
    rim: np.ndarray, crop: tuple[slice, slice], out: np.ndarray, near_colour: np.ndarray,
    walled: np.ndarray,
) -> float:
    """Share of a region's ``rim`` (in ``crop``) that is paper-like or open backdrop: a
    shadow fades into the paper, a product part meets outline and product."""
    return float((near_colour[crop][rim] | (~out[crop][rim] & ~walled[crop][rim])).mean())


def _regions_meeting_backdrop(
    candidates: np.ndarray, out: np.ndarray, walled: np.ndarray, opening: int = 1
) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
    """Crop and pixels of each region of ``candidates`` (opened by a disk of ``opening``)
    large enough to carve that meets the open backdrop; one inside the product is a part of it."""
    opened = cv2.morphologyEx(candidates.astype(np.uint8), cv2.MORPH_OPEN, _disk(opening)) > 0
    n, labels, stats = _components(opened)
    for i in np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= _MIN_CARVE_FRAC * out.size) + 1:
        crop, region, open_share = _open_contact(labels, stats, i, ~out, walled)
        if open_share is not None:
            yield crop, region


def _carve_tinted_shadows(
    est: ClassicalEstimate,
    prior: np.ndarray,
    out: np.ndarray,
    walled: np.ndarray,
    chroma: np.ndarray,
    near_colour: np.ndarray,
) -> None:
    """Carve (in place) the tinted cast shadows a shiny coloured product leaves beside it.

    Gold earrings throw a warm shadow (median chroma 5.5-5.9 against the metal's 18, at the
    working size, from the backdrop model; 14.9 in the deepest one, beside the right
    earring, where the metal's light falls), too
    coloured for the neutral-shade rule of :func:`fuse`, so the classical mask keeps it
    as product.  Such a region meets the backdrop, is darker than the paper by no more
    than a shadow gets (``_TINT_DEEP_DROP`` if clearly less coloured than the product),
    is no more coloured than the product (``_TINT_SHARE``), is wider
    than a shaded rim (it survives an opening by ``_TINT_OPEN``), fades
    into the paper along a fifth of its rim or more, is not salient and is clearly less
    so than the product beside it, which the prior is sure of (``_PRIOR_GAP``), and is
    small next to that product (``_TINT_MAX_SHARE``).  (Its outer edge may be sharp
    enough to count as an outline, so unlike :func:`fuse` this does not ask for open
    contact.)  A grey part the prior misses (a sole) meets only its own outline and the
    product.  On the 60 reference photos (fused-14) this changed the earrings' mask only:
    133 px of their shadows went, 15 px of a shaded rim with them (384 px).  Fused-16
    asks for "not salient" where fused-14 asked for "blind" (prior under ``_PRIOR_NONE``),
    which left the shadows under both clutches, takes the fringes the opening spared, and
    the deeper contact shadow under a clutch's pin: on the earrings 166 px more of kept
    backdrop go, 16 px of product with them (the earrings' rim 0.033-0.042 to 0.013-0.019),
    and no other mask changes.
    ``chroma`` and ``near_colour`` are :func:`fuse`'s (distance from the backdrop's colour).
    """
    salient = prior >= _PRIOR_ON
    sure = out & salient
    if not sure.any():
        return
    product_chroma = float(np.median(chroma[sure]))
    sure_area = int(sure.sum())
    if product_chroma < 3.0 * est.t_lo:
        return  # a neutral product: its shadow is the neutral shade fuse() handles
    tinted = (
        (est.diff[..., 0] < -2.0 * est.t_lo)
        & (
            (est.diff[..., 0] > -SHADOW_MAX_DROP)
            | ((est.diff[..., 0] > -_TINT_DEEP_DROP) & (chroma < _TINT_DEEP_SHARE * product_chroma))
        )
        & (chroma < _TINT_SHARE * product_chroma)
        & ~salient
        & out
    )
    for crop, region in _regions_meeting_backdrop(tinted, out, walled, _TINT_OPEN):
        if float(np.median(chroma[crop][region])) < 2.0 * est.t_lo:
            continue  # a neutral shade (a white sole's shaded end) is fuse()'s to judge
        # A shadow fades into the paper somewhere along its rim; a grey part the prior
        # misses (a sole) meets only outline and product.
        rim = (cv2.dilate(region.astype(np.uint8), _disk(2)) > 0) & ~region
        fades = _into_paper(rim, crop, out, near_colour, walled)
        ring = (cv2.dilate(region.astype(np.uint8), _disk(6)) > 0) & ~region & out[crop]
        beside = float(np.percentile(prior[crop][ring], 90)) if ring.any() else 0.0
        # The prior blurs the product into its shadow (medians 0.17-0.37 under the earrings' clutches,
        # 0.18 at most on average over a region), so a shadow need only be clearly less
        # salient than the product beside it, below where a thin part the prior is unsure
        # of is followed (_THIN_ON: a pale tie, 0.4), and small next to it: a part the
        # prior misses whole (the cups of a bra that fills the frame, beside straps it is
        # sure of) is as large as that product or larger.
        inside = float(prior[crop][region].mean())
        unsalient = inside < _THIN_ON and inside <= beside - _PRIOR_GAP
        small = region.sum() <= _TINT_MAX_SHARE * sure_area
        if fades >= 0.2 and beside >= _PRIOR_ON and unsalient and small:
            # With the core go the shadow's fringes that the opening took off it.
            grown = cv2.dilate(region.astype(np.uint8), _disk(_TINT_OPEN + 1)) > 0
            out[crop] &= ~(region | (grown & tinted[crop]))


def _carve_paper_shade(
    est: ClassicalEstimate,
    prior: np.ndarray,
    out: np.ndarray,
    walled: np.ndarray,
    chroma: np.ndarray,
    near_colour: np.ndarray,
) -> None:
    """Carve (in place) a shadow of the paper's own tint beside a product part tinted otherwise.

    A white platform sole throws a soft shadow behind its heel that is only 5 L
    below the paper and lighter than the shaded sole, so neither the neutral-shade
    rule of :func:`fuse` (over ``2 t_lo`` down) nor the edge rules at full size
    take it, and the prior, blind to the white sole, has no say (0.01 on both).
    What gives it away is its tint: a shadow only darkens the paper, so it keeps
    the paper's chroma exactly (median under ``0.2 t_lo`` from it: 0.01 on the
    sandal), while the sole's material is bluish (0.73 ``t_lo`` beside it).  So a
    region the mask kept that is darker than the paper, of the paper's tint, not
    salient, meeting the open backdrop, mostly ringed by paper-like pixels
    (:func:`_into_paper`: paper, or product near the paper's colour such as the
    white sole itself: 1.0 there, as a cast shadow fades into the paper around
    it), and beside product whose median chroma is at least ``0.5 t_lo`` off the
    paper's, is backdrop.  A white tee's shadow under its hem has the paper's
    tint but so has the tee (0.02): left to the edge rules.  Grey heather sock
    tops the prior misses are off the paper's tint (0.42), mostly ringed by
    product (0.26-0.29), and the product beside them is less tinted than the
    sole (0.44-0.47): each of the three keeps them.  On the 60 reference photos
    this changes the sandal's mask only (218 px of its heel shadow, at 384 px).
    """
    shade = (
        out
        & (est.diff[..., 0] < -est.t_lo)
        & (est.diff[..., 0] > -SHADOW_MAX_DROP)
        & (chroma < 0.5 * est.t_lo)
        & (prior < _PRIOR_NONE)
    )
    for crop, region in _regions_meeting_backdrop(shade, out, walled):
        wall = (cv2.dilate(region.astype(np.uint8), _disk(3)) > 0) & ~region & out[crop]
        if not wall.any() or float(np.median(chroma[crop][region])) >= _PAPER_TINT * est.t_lo:
            continue
        rim = (cv2.dilate(region.astype(np.uint8), _disk(2)) > 0) & ~region
        ringed_by_paper = _into_paper(rim, crop, out, near_colour, walled) >= _PAPER_RING
        if ringed_by_paper and float(np.median(chroma[crop][wall])) >= _TINTED_WALL * est.t_lo:
            out[crop] &= ~region


def fused_mask(image: np.ndarray, p: MaskParams) -> np.ndarray:
    """Soft product mask (float32 at ``image``'s size): fused decision, edge refined at full size."""
    from stylizer.saliency import salient_prior

    h, w = image.shape[:2]
    scale = min(1.0, p.work_side / max(h, w))
    small = image
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    est = estimate_classical(small, p)
    prior = salient_prior(small)
    binary = fuse(est, prior, p)
    radius = max(2, round(1.5 / scale))
    alpha = refine_edge(image, binary, radius)
    # The backdrop model at full size (a smooth quadratic surface: resizing it is exact enough).
    if max(h, w) < _MIN_SHADOW_SIDE:
        return alpha  # a shadow strip is under a pixel here, and the band would eat the product
    bg = cv2.resize(_lab(small) - est.diff, (w, h), interpolation=cv2.INTER_LINEAR)
    return drop_edge_shadows(image, alpha, bg, est.t_lo, reach=radius + 3)

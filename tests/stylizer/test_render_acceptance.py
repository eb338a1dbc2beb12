"""Renders a shop would ship, judged against reference masks the renderer did not produce.

The reference masks come from ``tests/reference_masks.py`` (interactive GrabCut on
the full 640 px photo from hand-set seeds in ``tests/fixtures/hm_reference_seeds.json``;
method and checking described there).  Each photo of ``../shared/data/hm`` is
rendered in background mode at 384 px with the real generator under three
artworks of ``../shared/data/styles`` and three procedural backdrop materials
(:mod:`demo.materials`), at the demo's scene strengths (artworks 0.45,
materials 0.85) with the default shadow, and measured with
:mod:`stylizer.metrics` against the reference:

* product ΔE (mean CIEDE2000 inside the reference product, 2 px off its edge) <= 1.0;
* rim (extra unchanged backdrop 3-10 px outside the reference product, where
  the render's finished scene differs from the photo's backdrop) <= 0.02.  Where
  the scene matches the old paper by chance (a pale scene darkened by the
  contact shadow to the paper's grey: a white shirt over Poitiers, 0.19 of its
  band), the render shows the scene and the picture is the same whatever the
  mask did; the CSV keeps the figure counting those pixels too
  (``rim_any_pixel``);
* kept hole (largest region the reference calls backdrop that the render kept
  as product, beyond a 2 px seam) <= 0.2 % of the frame;
* silhouette change (salient-object mask of the render vs of the *ideal render*:
  the photo's product, cut by the reference, over the same render's finished
  scene, ``Rendered.scene``, shadow and all but without the product; per
  product pixel, beyond 2 px of the outline, and only within 3 px of where the
  render visibly differs from the ideal one, CIEDE2000 > 2.3) <= 1 %.  Against
  the photo itself the estimator judges the scene more than the product: on a
  marble scene it drops three grey socks of five that it finds on white paper
  (a render with product ΔE 0.003 scored 0.62), and it finds nothing on a bra
  that fills the frame.  Over the same scene it sees the same things in both
  images, so what differs is what the renderer's mask changed: kept paper or a
  shadow read as product (the product grew), product lost to the scene (it
  shrank).  Even so, u2netp is a whole-image network and flips its call on
  regions far from any change: one grey level of invisible noise on the ideal
  render moves its verdict by more than 1 % on 10 of the 360 renders, by up to
  12.8 % (2026-12-03; another draw of the noise moved it by 100 % on a thong
  over marble, where it sees no product on the ideal render at all).  A product
  can only grow or shrink where pixels changed, so the figure is counted there,
  and per pixel of the reference's product; and each only where its own kind of
  change is: growth near pixels that changed outside the reference product
  (backdrop kept where the ideal render shows the scene), shrinkage near pixels
  that changed inside it (product lost).  A product cannot grow where the render
  shows less of it: on a pale thong over marble, where the estimator sees no
  product on the ideal render, it "gained" 386 px beside the 1 px of edge the
  render lost (2026-12-05).  The CSV keeps that figure unsplit
  (``silhouette_unsplit``), the unrestricted figure (``silhouette_anywhere``),
  that noise floor (``silhouette_noise_floor``)
  and the figure against the photo (``silhouette_vs_photo``) for comparison,
  and the rim of the photo's product over the finished scene alone
  (``rim_scene_only``): what the scene and its shadow leave with no backdrop
  kept by the mask.  It also renders the reference itself as the mask, its edge
  feathered by a Gaussian of 0.7 px, and keeps that render's figure
  (``silhouette_perfect_soft``): what a perfect mask composited softly, as the
  issue asks, scores: a render over the limit where the perfect mask is far
  under it (the printed tee: 2.0-3.9 % against 0.00 %) is the mask's doing; one
  where both are over is, at least in part, the estimator's.  Two things make
  the estimator fit to measure that (2026-12-06):

  - it is u2netp's mean over the image and its three mirror images
    (``salient_prior(..., flips=True)``).  With one view the perfect mask
    scored 7.0 % on a bra over marble, where the renderer's own mask scored
    0.03 %: the network's call on whole regions flipped with the soft edge;
  - growth is counted outside the reference product only, shrinkage inside it
    only: a product cannot grow into its own pixels.  The four views' mean
    falls a few pixels short of a thong's edge on the ideal render, and 616
    of the 627 px of "growth" on its render over marble (mask within a pixel
    or two of the reference) were its own edge.

  Over the 360 renders the perfect mask went from 7 over the limit (worst
  7.0 %, one view, either side) to 4 (1.8 %, four views) to 1 (1.02 %, both),
  and none of the renderer's 17 over the limit is among them.  The CSV keeps
  the earlier figures: ``silhouette_either_side`` and
  ``silhouette_perfect_soft_either_side`` (four views),
  ``silhouette_single_view`` and ``silhouette_perfect_soft_single_view`` (one
  view, either side, the acceptance's figure until then).

The default run compares the fused and the classical masks against the references
on the hard photos (white and light garments on light grey, thin straps, trousers
with a gap, a scarf's loop, shoes, a product cut by the frame); ``-m slow`` renders
all 60 x 6 and checks the issue's thresholds (not all met yet: see the xfail).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from reference_masks import reference_for

from stylizer.image_io import load_image
from stylizer.metrics import (
    hole_area,
    product_delta_e,
    rim_score,
    silhouette_change,
    visible_change,
)
from stylizer.saliency import salient_views

ARTWORKS = ("brushstrokes", "mondrian", "the_resevoir_at_poitiers")
MATERIALS = ("marble", "linen", "concrete")
STRENGTH = {"artwork": 0.45, "material": 0.85}
MAX_SIDE = 384

#: White / light garments on light grey, thin straps, trouser gaps, a scarf's loop,
#: a sneaker with its shadow, a product cut by the frame.
HARD = (
    "0739455009",  # light top with thin straps
    "0865792003",  # light pink leggings, gap between the legs
    "0801962005",  # light blue dress on light grey
    "0697813009",  # white T-shirt with a print
    "0617808001",  # black trousers, shaded gap between the legs
    "0669901001",  # scarf with an enclosed loop
    "0755071002",  # hat with thin ties
    "0495573002",  # bra cut by the frame, straps
)

LIMITS = {"delta_e": 1.0, "rim": 0.02, "hole": 0.002, "silhouette": 0.01}
#: Feather (Gaussian sigma, px) of the reference when it is rendered as a perfect soft mask.
PERFECT_FEATHER = 0.7


@functools.lru_cache(maxsize=1)
def _styles(data_dir: str) -> tuple[list[str], np.ndarray, list[float]]:
    from demo.materials import draw_material
    from stylizer.encoder import StyleEncoder

    images, names, strengths = [], [], []
    for name in ARTWORKS:
        images.append(load_image(Path(data_dir) / "styles" / f"{name}.jpg", max_side=512).rgb)
        names.append(name)
        strengths.append(STRENGTH["artwork"])
    for name in MATERIALS:
        images.append(draw_material(name, 512))
        names.append(name)
        strengths.append(STRENGTH["material"])
    codes = StyleEncoder(device="cpu").encode(images)
    return names, np.asarray(codes, np.float32), strengths


def evaluate(shared_data: Path, stems: list[str], styles: list[str]) -> list[dict]:
    """Render every photo under every style; one row of figures per render."""
    from stylizer.renderer import Renderer

    names, codes, strengths = _styles(str(shared_data))
    pick = [names.index(s) for s in styles]
    renderer = Renderer("background", max_side=MAX_SIDE, device="cpu")
    rows = []
    for stem in stems:
        path = shared_data / "hm" / "images" / f"{stem}.jpg"
        img = load_image(path, max_side=MAX_SIDE).rgb
        ref = reference_for(str(path), (img.shape[1], img.shape[0])).astype(np.float32)
        mask = renderer.mask_for(img)
        render = functools.partial(
            renderer.render_detailed, [img] * len(pick), codes[pick],
            scene_strengths=[strengths[i] for i in pick],
        )
        out = render([mask] * len(pick))
        # The reference itself as the renderer's mask, its edge feathered as a soft matte's
        # is (PERFECT_FEATHER): a perfect mask composited softly, as the issue asks.  Its
        # figure is what the silhouette estimator makes of a soft edge alone.
        perfect = render([cv2.GaussianBlur(ref, (0, 0), PERFECT_FEATHER)] * len(pick))
        hole = hole_area(mask, ref)
        before = salient_views(img).mean(axis=0)
        rng = np.random.default_rng(0)
        for i, r, p in zip(pick, out, perfect, strict=True):
            # The ideal render: the photo's product (by the reference) over this render's
            # finished scene.  Not over the render itself: there, backdrop the mask kept would
            # show in both images, and product grown by it could never be seen (until
            # 2026-12-05 it was so, and the figure saw only product lost).
            ideal = np.where(ref[..., None] > 0.5, img, r.scene)
            ideal_p = np.where(ref[..., None] > 0.5, img, p.scene)
            # The estimator's four views of each image (itself and its mirror images): the
            # figures use their mean, the CSV also keeps the single view's (see the docstring).
            views = {k: salient_views(v) for k, v in
                     (("ideal", ideal), ("render", r.image), ("ideal_p", ideal_p), ("perfect", p.image))}
            mean = {k: v.mean(axis=0) for k, v in views.items()}
            on_ideal, after = mean["ideal"], mean["render"]
            # The estimator's noise floor: the ideal render plus one grey level of noise.
            noisy = np.clip(ideal + rng.integers(-1, 2, ideal.shape), 0, 255).astype(np.uint8)
            rows.append({
                "photo": stem,
                "style": names[i],
                "delta_e": product_delta_e(img, r.image, ref),
                # Judged where the scene differs from the photo's backdrop (see rim_score).
                "rim": rim_score(img, r.image, ref, scene=r.scene),
                "rim_any_pixel": rim_score(img, r.image, ref),
                # The photo's product (by the reference) over the finished scene alone: the
                # rim that the scene and its shadow leave with no backdrop kept by the mask (a
                # pale scene darkened by the product's shadow can match the old paper by chance).
                "rim_scene_only": rim_score(img, ideal, ref),
                "hole": hole,
                "silhouette": _silhouette(ideal, r.image, ref, on_ideal, after),
                # The same figure for the perfect mask composited softly, against its own
                # ideal render (its scene differs a little: the fill and shadow follow the mask).
                "silhouette_perfect_soft": _silhouette(
                    ideal_p, p.image, ref, mean["ideal_p"], mean["perfect"]
                ),
                # Growth and shrinkage counted on either side of the reference's edge.
                "silhouette_either_side": _silhouette(
                    ideal, r.image, ref, on_ideal, after, either_side=True
                ),
                "silhouette_perfect_soft_either_side": _silhouette(
                    ideal_p, p.image, ref, mean["ideal_p"], mean["perfect"], either_side=True
                ),
                # With the estimator's single view and counted on either side, as until 2026-12-06.
                "silhouette_single_view": _silhouette(
                    ideal, r.image, ref, views["ideal"][0], views["render"][0], either_side=True
                ),
                "silhouette_perfect_soft_single_view": _silhouette(
                    ideal_p, p.image, ref, views["ideal_p"][0], views["perfect"][0],
                    either_side=True,
                ),
                # Growth and shrinkage both counted near any change (until 2026-12-05).
                "silhouette_unsplit": silhouette_change(
                    ideal, r.image, before=on_ideal, after=after, tolerance_px=2,
                    where=visible_change(ideal, r.image), product_area=float(ref.sum()),
                ),
                "silhouette_anywhere": silhouette_change(
                    ideal, r.image, before=on_ideal, after=after, tolerance_px=2
                ),
                "silhouette_noise_floor": silhouette_change(
                    ideal, noisy, before=on_ideal, tolerance_px=2
                ),
                "silhouette_vs_photo": silhouette_change(
                    img, r.image, before=before, after=after, tolerance_px=2
                ),
            })  # fmt: skip
    return rows


def _silhouette(
    ideal: np.ndarray,
    image: np.ndarray,
    ref: np.ndarray,
    on_ideal: np.ndarray,
    after: np.ndarray,
    either_side: bool = False,
) -> float:
    """The acceptance's silhouette change of ``image`` against its ideal render: growth
    outside the reference product, near pixels that changed there; shrinkage inside it,
    near pixels that changed there.  A pixel of the product itself is not the product
    grown, however the estimator called it on the ideal render (a thong over marble,
    its mask within a pixel or two of the reference: 616 of its 627 px of "growth" lay
    inside the product, where the four-view estimator's outline fell short on the
    ideal render).  ``either_side``: the figure before that (until 2026-12-06)."""
    inside = ref > 0.5
    grow = visible_change(ideal, image, within=~inside)
    shrink = visible_change(ideal, image, within=inside)
    if not either_side:
        grow, shrink = grow & ~inside, shrink & inside
    return silhouette_change(
        ideal, image, before=on_ideal, after=after, tolerance_px=2,
        where=grow, shrink_where=shrink, product_area=float(ref.sum()),
    )  # fmt: skip


def _report(rows: list[dict]) -> str:
    lines = [f"{len(rows)} renders at {MAX_SIDE} px against reference masks:"]
    for key, limit in LIMITS.items():
        values = np.array([r[key] for r in rows])
        worst = rows[int(values.argmax())]
        lines.append(
            f"  {key:10s} worst {values.max():.4f} ({worst['photo']}, {worst['style']}), "
            f"median {np.median(values):.4f}, limit {limit}"
        )
    limit = LIMITS["silhouette"]
    over = [r for r in rows if r["silhouette"] > limit]
    perfect_over = [r for r in rows if r["silhouette_perfect_soft"] > limit]
    lines.append(
        f"  silhouette over the limit: {len(over)} renders ({len({r['photo'] for r in over})} "
        f"photos); with the perfect soft mask {len(perfect_over)} (worst "
        f"{max(r['silhouette_perfect_soft'] for r in rows):.4f}), "
        f"{sum(r['silhouette_perfect_soft'] > limit for r in over)} of the {len(over)} among them"
    )
    return "\n".join(lines)


def _check(rows: list[dict]) -> None:
    print("\n" + _report(rows))  # figures first, so a failing run still reports them (-s)
    out = os.environ.get("STYLEREC_ACCEPTANCE_CSV")  # every row, for a closer look
    if out:
        import pandas as pd

        pd.DataFrame(rows).to_csv(out, index=False)
    for row in rows:
        for key, limit in LIMITS.items():
            assert row[key] <= limit, (key, row)


def test_silhouette_counts_growth_outside_the_product_and_shrinkage_inside_it() -> None:
    """A render that keeps a strip of backdrop beside the product grows by that strip only:
    the estimator's outline falling short of the product's edge on the ideal render is not
    the product grown; and a band of the product lost is counted as shrinkage."""
    ref = np.zeros((100, 100), np.float32)
    ref[30:70, 30:70] = 1.0
    ideal = np.full((100, 100, 3), 200, np.uint8)
    ideal[ref > 0] = (50, 50, 150)
    image = ideal.copy()
    image[30:70, 70:74] = (50, 50, 150)  # backdrop kept beside the right edge
    on_ideal = np.zeros((100, 100), np.float32)
    on_ideal[30:70, 30:66] = 1.0  # short of the right edge by 4 px
    after = np.zeros((100, 100), np.float32)
    after[30:70, 30:74] = 1.0  # the edge and the kept strip
    # Beyond the 2 px tolerance around the ideal estimate's outline (x 64-68): the kept strip
    # (x 70-74) is growth; x 68-70 is the product's own edge.
    assert _silhouette(ideal, image, ref, on_ideal, after) == pytest.approx(4 * 40 / 1600)
    either = _silhouette(ideal, image, ref, on_ideal, after, either_side=True)
    assert either == pytest.approx(6 * 40 / 1600)
    lost = image.copy()
    lost[30:70, 60:70] = 200  # the render loses a band of the product
    shrunk = after.copy()
    shrunk[30:70, 58:74] = 0.0
    # x 58-64, off the 2 px band along the estimate's top and bottom edges: 6 x 36 px.
    assert _silhouette(ideal, lost, ref, on_ideal, shrunk) == pytest.approx(6 * 36 / 1600)


def test_fused_masks_beat_the_classical_ones_on_the_hard_photos(shared_data: Path) -> None:
    """Against the reference masks, on the hard photos: the fused mask is never worse than
    the classical one (IoU within 0.01, kept holes within 0.1 % of the frame), keeps under a
    quarter of the classical mask's backdrop holes (trouser gaps, shoes, a cropped bra), and
    is better on average.  Masks only: the render figures are the slow test's.  Measured
    2026-12-02: mean IoU 0.904 -> 0.956, summed hole area 0.234 -> 0.037 of a frame
    (0.038 after the second pass, with the corrected scarf and bra references).  2026-12-03,
    with the references redone (matting, hat tie, tee neckband) and fused-4: mean IoU
    0.903 -> 0.966, summed holes 0.221 -> 0.005; fused-5 (the printed tee's white edge kept)
    0.903 -> 0.968, summed holes 0.221 -> 0.005; 2026-12-04, fused-6 and the references of
    the sweep (the scarf's knit restored): 0.904 -> 0.969, summed holes 0.221 -> 0.005; fused-7
    and the leggings' corrected reference: 0.905 -> 0.969, summed holes 0.220 -> 0.004; fused-8
    (a hat's thin tie kept): 0.905 -> 0.972, summed holes 0.220 -> 0.004; 2026-12-05, fused-11
    (unsure pixels followed): 0.905 -> 0.972 (0.9724), summed holes 0.220 -> 0.004; fused-12
    and the scarf's mended reference: 0.906 -> 0.973 (0.9732), summed holes 0.220 -> 0.003;
    fused-13 to fused-15 (2026-12-06) the same; fused-16 and the shoes' corrected reference:
    0.906 -> 0.974 (0.9736), summed holes 0.220 -> 0.003."""
    from stylizer.masks import product_mask

    rows = []
    for stem in (*HARD, "0778744001", "0915362002"):
        path = shared_data / "hm" / "images" / f"{stem}.jpg"
        img = load_image(path, max_side=MAX_SIDE).rgb
        ref = reference_for(str(path), (img.shape[1], img.shape[0]))
        row = {"photo": stem}
        for method in ("classical", "fused"):
            m = product_mask(img, method=method)
            hard = m > 0.5
            row[f"iou_{method}"] = float((hard & ref).sum() / max((hard | ref).sum(), 1))
            row[f"hole_{method}"] = hole_area(m, ref.astype(np.float32))
        rows.append(row)
    for r in rows:
        print(r)
    for r in rows:
        assert r["iou_fused"] >= r["iou_classical"] - 0.01, r
        assert r["hole_fused"] <= r["hole_classical"] + 0.001, r
    holes_classical = sum(r["hole_classical"] for r in rows)
    holes_fused = sum(r["hole_fused"] for r in rows)
    assert holes_classical > 0.1  # the defect is there before fusion (bra, shoes, trousers)
    assert holes_fused < 0.25 * holes_classical
    assert np.mean([r["iou_fused"] for r in rows]) > np.mean([r["iou_classical"] for r in rows]) + 0.03


@pytest.mark.slow
@pytest.mark.xfail(
    reason="issue 12 acceptance not met yet (docs/benchmarks.md, issue 12, fourteenth pass): "
    "product dE, the kept hole and the rim are met on every render (worst 0.64, 0.14 %, 0.019); "
    "the silhouette is over 1 % on 17 renders of 6 photos, where the reference composited with "
    "a soft edge passes every one: gold earrings up to 4.0 % (kept warm shadows), the printed "
    "tee 3.9 % (missed white fabric), crayons 2.5 %, shoes 2.5 % (the toe's shadow strip), a bra "
    "1.1 % and a hat 1.1 % (the tie's shadow); the soft reference is over on 1 render, at 1.02 %",
    strict=True,
)
def test_all_60_photos_x_6_styles(shared_data: Path) -> None:
    stems = sorted(p.stem for p in (shared_data / "hm" / "images").glob("*.jpg"))
    assert len(stems) == 60
    rows = evaluate(shared_data, stems, [*ARTWORKS, *MATERIALS])
    assert len(rows) == 360
    _check(rows)


def _mask_figures(shared_data: Path, stem: str) -> tuple[int, int, float]:
    """The fused mask of one photo at 384 px against its reference: backdrop kept as product
    (px), product missed (px) and the largest kept hole (share of the frame)."""
    from stylizer.masks import product_mask

    path = shared_data / "hm" / "images" / f"{stem}.jpg"
    img = load_image(path, max_side=MAX_SIDE).rgb
    ref = reference_for(str(path), (img.shape[1], img.shape[0]))
    m = product_mask(img, method="fused")
    kept = m > 0.5
    return int((kept & ~ref).sum()), int((ref & ~kept).sum()), hole_area(m, ref.astype(np.float32))


def test_fused5_keeps_a_white_sole_and_a_tee_edge_and_drops_a_gold_shadow(shared_data: Path) -> None:
    """Against the references, three fixes of fused-5 that fused-4 failed (measured 2026-12-03):

    * the sandal 0686031002's white platform sole, which the prior does not see at all, stays
      product (product missed 831 px on fused-4, 273 on fused-5; 76 against the reference as
      corrected on 2026-12-04, whose see-through gaps between the straps are paper);
    * the printed tee 0697813009's white edge between navy sharks is not taken for a shadow
      strip (2,402 px missed, 1,930 now; the rest is its inside back);
    * the earrings 0650447001's warm cast shadow is carved (largest kept hole 0.43 % of the
      frame, 0.25 % now).
    """
    figures = functools.partial(_mask_figures, shared_data)
    assert figures("0686031002")[1] < 450
    assert figures("0697813009")[1] < 2150
    assert figures("0650447001")[2] < 0.0035


def test_fused6_keeps_a_white_tee_back_collar(shared_data: Path) -> None:
    """The white tee 0790096002's back collar, white on light grey above the front neckline,
    is found by the prior only, and its faint top edge counts as an outline along 47 % of its
    contact with the paper.  Fused-5 asked for half and dropped it as padding (787 px of
    product missed, 2026-12-04); fused-6 asks for a quarter and keeps it (233 px missed,
    along the outline)."""
    from stylizer.masks import product_mask

    path = shared_data / "hm" / "images" / "0790096002.jpg"
    img = load_image(path, max_side=MAX_SIDE).rgb
    ref = reference_for(str(path), (img.shape[1], img.shape[0]))
    kept = product_mask(img, method="fused") > 0.5
    assert int((ref & ~kept).sum()) < 400
    # The collar brings no paper with it: what is kept beyond the reference is the shadow strip
    # down the right side and under the hem that fused-5 kept too (1,349 px; 1,051 on fused-7,
    # which drops the strip's outer slope).
    assert int((kept & ~ref).sum()) <= 1400


def test_fused7_drops_the_fading_shadow_beside_white_products(shared_data: Path) -> None:
    """Against the references (measured 2026-12-04), fused-7 takes the outer slope of the
    shadow beside white products out of the mask: backdrop kept as product falls from 2,155 to
    1,736 px on the white trousers 0762061009 (their largest kept hole, the shaded top of the
    gap, from 0.62 % to 0.45 % of the frame), from 1,349 to 1,051 on the white tee 0790096002,
    and from 946 to 823 under the sandal 0686031002's white sole.  The cost is the outermost
    pixel of some light edges: the grey hood of 0912511002 misses 299 px (223 on fused-6).
    (The trousers' figures are against their reference as it was then; see fused-9.)"""
    figures = functools.partial(_mask_figures, shared_data)
    extra, missed, hole = figures("0762061009")
    assert extra < 1900 and missed < 120 and hole < 0.005
    extra, missed, _ = figures("0790096002")
    assert extra < 1200 and missed < 400
    extra, missed, _ = figures("0686031002")
    assert extra < 900 and missed < 120
    assert figures("0912511002")[1] < 350


def test_fused8_keeps_a_hats_thin_tie(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the reference (measured 2026-12-04), fused-8 keeps the hat 0755071002's right
    tie, 3 px wide at 384 px, pale pink on light grey, which the classical mask misses and the
    opening of the prior's padding erased: of its 911 px below the brim the mask missed 658 and
    now misses 286, with 183 px of paper beside it (173 before: the tie's cast shadow is not
    followed).  Over the 60 photos nothing else moves but 105 px of a printed tee's neckband
    and 11 px of a sneaker's collar lining, both product."""
    import stylizer.mask_fusion as mask_fusion
    from stylizer.masks import product_mask

    path = shared_data / "hm" / "images" / "0755071002.jpg"
    img = load_image(path, max_side=MAX_SIDE).rgb
    ref = reference_for(str(path), (img.shape[1], img.shape[0]))
    box = np.zeros_like(ref)
    box[175:, 150:230] = True  # below the brim, right of the hat's middle
    tie = box & ref

    def missed_and_extra() -> tuple[int, int]:
        kept = product_mask(img, method="fused") > 0.5
        return int((tie & ~kept).sum()), int((box & kept & ~ref).sum())

    missed, extra = missed_and_extra()
    assert int(tie.sum()) > 800
    assert missed < 350 and extra < 220
    monkeypatch.setattr(mask_fusion, "_THIN_ON", 2.0)  # no thin parts (fused-11 follows
    monkeypatch.setattr(mask_fusion, "_UNSURE_ON", 2.0)  # part of the tie too): the fused-7 mask
    assert missed_and_extra()[0] > 600


def test_fused9_drops_the_wide_shadow_band_beside_white_trouser_legs(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the reference (measured 2026-12-04, with the white trousers' reference mended
    where its gap had run up over the crotch fold into printed fabric), fused-9 takes out the
    shadow band 4-9 px wide beside the white trousers 0762061009's left leg and under their
    crotch fold, which the fading rule only thinned: their largest kept hole falls from
    0.315 % to 0.135 % of the frame.  A white tee's dark outline (0790096002, 2 px) and a
    grey hood's textured shaded fold (0912511002) stay.  (Since fused-13 the trousers keep
    22 px more at the waistband's textured corner, where the fading rule no longer reads a
    profile: 1,520 px of backdrop kept, against 1,498.)"""
    import stylizer.edge_shadows as edge_shadows

    figures = functools.partial(_mask_figures, shared_data)
    extra, missed, hole = figures("0762061009")
    assert hole < LIMITS["hole"] and extra < 1525 and missed < 120
    assert figures("0790096002")[1] < 320
    assert figures("0912511002")[1] < 350

    def no_wide_bands(rough: np.ndarray, *args: object) -> np.ndarray:
        return np.zeros(rough.shape, bool)

    monkeypatch.setattr(edge_shadows, "_wide_edge_shadow", no_wide_bands)  # the fused-8 rules
    assert figures("0762061009")[2] > LIMITS["hole"]


def test_fused10_carves_a_sandals_paper_tinted_heel_shadow(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the reference (measured 2026-12-04), fused-10 carves the soft shadow behind the
    sandal 0686031002's white platform heel, which keeps the paper's tint (0.01 t_lo off it)
    beside a bluish sole (0.73 t_lo): backdrop kept 823 -> 605 px, largest kept hole 0.201 % ->
    0.066 % of the frame, no product lost.  The grey sock tops of 0499368003, which the prior
    misses too, are kept three times over: they are off the paper's tint (0.42 t_lo), ringed
    mostly by product (0.26-0.29 of their rim is paper-like), and the product beside them is
    less tinted than the sole (0.44-0.47 t_lo, a little under 0.5); each cue alone keeps them."""
    import stylizer.mask_fusion as mask_fusion

    figures = functools.partial(_mask_figures, shared_data)
    extra, missed, hole = figures("0686031002")
    assert extra < 700 and missed < 120 and hole < LIMITS["hole"]
    socks_missed = figures("0499368003")[1]
    assert socks_missed < 300
    monkeypatch.setattr(mask_fusion, "_PAPER_TINT", 99.0)  # any tint: the ring alone
    assert figures("0499368003")[1] == socks_missed
    monkeypatch.setattr(mask_fusion, "_PAPER_RING", 0.0)  # and any ring: the wall alone
    assert figures("0499368003")[1] == socks_missed
    monkeypatch.setattr(mask_fusion, "_TINTED_WALL", 0.4)  # and a wall a little less tinted
    assert figures("0499368003")[1] > socks_missed + 1000
    monkeypatch.setattr(mask_fusion, "_TINTED_WALL", 99.0)  # no carving: the fused-9 mask
    assert figures("0686031002")[2] > LIMITS["hole"]


def test_fused11_follows_the_prior_where_it_is_unsure_but_not_across_a_gap(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against the references (measured 2026-12-05), fused-11 lets an added region follow the
    prior down to 0.3 where it is not a cast shade: the sneaker 0888404001's white collar
    lining misses 143 -> 89 px, the printed tee 0697813009's white fabric along its sides
    1,888 -> 1,659 px.  Not across a gap narrower than 15 working pixels between classical
    parts: the paper between two of the crayons 0571818001, which the prior bridges, would grow
    their largest kept hole from 0.175 % to 0.215 % of the frame, over the limit."""
    import stylizer.mask_fusion as mask_fusion

    figures = functools.partial(_mask_figures, shared_data)
    extra, missed, _ = figures("0888404001")
    assert missed < 100 and extra < 90
    extra, missed, _ = figures("0697813009")
    assert missed < 1700 and extra < 80
    assert figures("0571818001")[2] < LIMITS["hole"]
    monkeypatch.setattr(mask_fusion, "_GAP_BRIDGE", 1)  # no gap left alone
    assert figures("0571818001")[2] > LIMITS["hole"]
    monkeypatch.setattr(mask_fusion, "_UNSURE_ON", 2.0)  # no unsure pixels: the fused-10 mask
    assert figures("0888404001")[1] > 130

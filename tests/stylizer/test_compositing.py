"""Scene finishing and edge metrics: product pixels never change; shadows, strength, rims."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stylizer.compositing import (
    composite_decontaminated,
    contact_shadow,
    finish_scene,
    harmonize_tone,
)
from stylizer.metrics import hole_area, rim_score, silhouette_change, visible_change


def _product(h: int = 160, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    img = np.full((h, w, 3), 232, np.uint8)
    mask = np.zeros((h, w), np.float32)
    cv2.rectangle(mask, (35, 30), (85, 130), 1.0, -1)
    img[mask > 0] = (120, 20, 30)
    return img, cv2.GaussianBlur(mask, (0, 0), 0.7)


def test_shadow_grounds_the_product_and_never_touches_it() -> None:
    _, mask = _product()
    sh = contact_shadow(mask, 0.4)
    assert sh.dtype == np.float32 and sh.max() <= 0.4 + 1e-6
    assert sh[mask >= 1.0].max() == 0.0 and sh[mask > 0.99].max() < 0.01  # none on the product
    below = sh[133:140, 40:80].mean()
    above = sh[20:27, 40:80].mean()
    assert below > 0.1 and below > 2 * above  # heavier under the product than above it
    assert sh[:, :10].max() < 0.02  # faint far away
    assert contact_shadow(mask, 0.0).max() == 0.0


def test_scene_strength_blends_with_the_clean_backdrop() -> None:
    rng = np.random.default_rng(0)
    stylized = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    backdrop = np.full((20, 30, 3), 230.0, np.float32)
    assert np.array_equal(finish_scene(stylized, backdrop, 1.0, None), stylized)
    assert np.array_equal(finish_scene(stylized, backdrop, 0.0, None), np.full_like(stylized, 230))
    half = finish_scene(stylized, backdrop, 0.5, None).astype(np.float32)
    np.testing.assert_allclose(half, (stylized.astype(np.float32) + 230) / 2, atol=0.51)
    shadow = np.full((20, 30), 0.5, np.float32)
    assert finish_scene(stylized, backdrop, 0.0, shadow).max() == 115
    with pytest.raises(ValueError):
        finish_scene(stylized, backdrop, 1.5, None)


def test_tone_moves_the_scene_lightness_towards_the_photo() -> None:
    dark = np.full((20, 20, 3), 40, np.uint8)
    light = np.full((20, 20, 3), 220, np.uint8)
    assert np.array_equal(harmonize_tone(dark, light, 0.0), dark)
    half = harmonize_tone(dark, light, 0.5)
    assert 40 < half.mean() < 220
    assert harmonize_tone(dark, light, 1.0).mean() > half.mean()


def test_rim_sees_a_ring_of_old_backdrop_that_a_clean_composite_does_not_leave() -> None:
    img, mask = _product()
    scene = np.full_like(img, 90)
    backdrop = np.full(img.shape, 232.0, np.float32)
    clean = composite_decontaminated(img, backdrop, scene, mask)
    assert rim_score(img, clean, mask) < 0.01
    # a mask padded by 6 px keeps a ring of the old backdrop around the product
    padded = cv2.dilate((mask > 0.5).astype(np.uint8), np.ones((13, 13), np.uint8)).astype(np.float32)
    ringed = composite_decontaminated(img, backdrop, scene, padded)
    assert rim_score(img, ringed, mask) > 0.3
    # a calm scene leaves backdrop unchanged everywhere: that is no rim
    assert rim_score(img, img.copy(), mask) == 0.0


def test_rim_given_the_scene_ignores_a_scene_that_matches_the_old_backdrop_by_chance() -> None:
    img, mask = _product()
    backdrop = np.full(img.shape, 232.0, np.float32)
    # a dark scene whose ring next to the product is exactly the paper's grey (a pale
    # patch darkened by the shadow): the correct render shows the paper's colour there
    ring = _band_around(mask, 2, 12)
    scene = np.full_like(img, 90)
    scene[ring] = 232
    clean = composite_decontaminated(img, backdrop, scene, mask)
    assert rim_score(img, clean, mask) > 0.5  # counted as kept backdrop without the scene
    assert rim_score(img, clean, mask, scene=scene) == 0.0
    # a mask padded by 6 px keeps paper where the scene is dark: still a rim
    scene_dark = np.full_like(img, 90)
    padded = cv2.dilate((mask > 0.5).astype(np.uint8), np.ones((13, 13), np.uint8)).astype(np.float32)
    ringed = composite_decontaminated(img, backdrop, scene_dark, padded)
    assert rim_score(img, ringed, mask, scene=scene_dark) > 0.3
    # half the ring matches by chance, the other half is kept paper over a dark scene
    scene_half = scene_dark.copy()
    scene_half[ring & (np.arange(img.shape[1]) < 60)[None, :]] = 232
    half = composite_decontaminated(img, backdrop, scene_half, padded)
    assert 0.15 < rim_score(img, half, mask, scene=scene_half) < rim_score(img, half, mask)


def _band_around(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    hard = (mask > 0.5).astype(np.uint8)
    near = cv2.dilate(hard, np.ones((2 * inner + 1,) * 2, np.uint8))
    far = cv2.dilate(hard, np.ones((2 * outer + 1,) * 2, np.uint8))
    return (far > 0) & (near == 0)


def test_hole_area_and_silhouette() -> None:
    h, w = 100, 100
    ref = np.zeros((h, w), np.float32)
    ref[20:80, 20:40] = ref[20:80, 60:80] = ref[20:30, 20:80] = 1.0  # two legs and a waist
    kept = ref.copy()
    kept[30:80, 40:60] = 1.0  # the gap between the legs kept as product
    assert hole_area(ref, ref) == 0.0
    assert hole_area(kept, ref) == pytest.approx((50 - 0) * (20 - 4) / (h * w), rel=0.15)

    def est(image: np.ndarray) -> np.ndarray:
        return (image[..., 0] < 128).astype(np.float32)

    photo = np.full((h, w, 3), 230, np.uint8)
    photo[ref > 0] = 20
    grown = photo.copy()
    grown[30:80, 40:60] = 20
    assert silhouette_change(photo, photo, est) == 0.0
    assert silhouette_change(photo, grown, est) == pytest.approx(1000 / (ref > 0).sum())
    # Known estimates on either side stand in for the estimator's calls.
    assert silhouette_change(
        photo, photo, est, before=est(photo), after=est(grown)
    ) == pytest.approx(1000 / (ref > 0).sum())


def test_silhouette_tolerance_ignores_an_outline_that_wanders_but_not_growth() -> None:
    h, w = 100, 100
    photo = np.full((h, w, 3), 230, np.uint8)
    photo[20:80, 30:70] = 20

    def est(image: np.ndarray) -> np.ndarray:
        return (image[..., 0] < 128).astype(np.float32)

    wobble = photo.copy()
    wobble[20:80, 70:72] = 20  # the outline moved by 2 px on one side
    grown = photo.copy()
    grown[80:90, 30:70] = 20  # a 10 px band below the product read as product (a kept shadow)
    assert silhouette_change(photo, wobble, est) > 0.04
    assert silhouette_change(photo, wobble, est, tolerance_px=2) == 0.0
    assert silhouette_change(photo, grown, est, tolerance_px=2) == pytest.approx(
        (10 - 2) * 40 / (60 * 40), rel=0.1
    )


def test_silhouette_where_counts_growth_at_changed_pixels_not_an_estimator_flip() -> None:
    """Restricted to where the render visibly changed, a kept shadow (pixels changed and read
    as product) still counts, while a flip of the estimator's call on an untouched region
    (a whole-image network reacting to a change elsewhere) does not."""
    h, w = 100, 100
    photo = np.full((h, w, 3), 230, np.uint8)
    photo[20:60, 30:70] = 20
    grown = photo.copy()
    grown[60:70, 30:70] = 20  # a band below the product read as product

    def flips(image: np.ndarray) -> np.ndarray:
        out = (image[..., 0] < 128).astype(np.float32)
        if image[65, 50, 0] < 128:  # any change below the product flips a far corner too
            out[85:95, 5:25] = 1.0
        return out

    where = visible_change(photo, grown)
    assert where[60:70, 30:70].all() and not where[85:95, 5:25].any()
    band = (10 - 2) * 40 / (40 * 40)
    assert silhouette_change(photo, grown, flips, tolerance_px=2) == pytest.approx(
        band + 200 / 1600, rel=0.1
    )
    assert silhouette_change(photo, grown, flips, tolerance_px=2, where=where) == pytest.approx(
        band, rel=0.1
    )
    # Invisible change (one grey level) leaves nothing to count.
    assert not visible_change(photo, photo + 1).any()
    # An estimator blind on the original: only a known product area keeps the figure defined.
    blind = np.zeros((h, w), np.float32)
    assert silhouette_change(photo, grown, flips, before=blind) == 1.0
    assert silhouette_change(photo, grown, flips, before=blind, product_area=1600.0) == pytest.approx(
        (1600 + 400 + 200) / 1600
    )
    # within 3 px of the changed band: the band and 3 rows of the product above it
    assert silhouette_change(
        photo, grown, flips, before=blind, where=where, product_area=1600.0
    ) == pytest.approx((400 + 3 * 40) / 1600, rel=0.1)


def test_silhouette_split_counts_growth_by_kept_backdrop_and_shrinkage_by_lost_product() -> None:
    """With a reference, growth counts only near pixels that changed outside the product and
    shrinkage only near pixels that changed inside it: an estimator that gains product beside
    product the render lost (or drops product beside kept paper) has flipped its own call."""
    h, w = 100, 100
    ref = np.zeros((h, w), bool)
    ref[20:60, 30:70] = True
    ideal = np.full((h, w, 3), 230, np.uint8)
    ideal[ref] = 20
    render = ideal.copy()
    render[60:70, 30:70] = 20  # kept backdrop below the product: real growth
    render[20:60, 30:34] = 230  # the product's left 4 columns lost to the scene: real shrinkage

    def est(image: np.ndarray) -> np.ndarray:
        out = (image[..., 0] < 128).astype(np.float32)
        if image[40, 31, 0] > 128:  # the lost column makes it gain a strip beyond it, on the left
            out[20:60, 22:30] = 1.0
        if image[65, 50, 0] < 128:  # the kept band makes it drop the product's bottom-right corner
            out[52:60, 62:70] = 0.0
        return out

    grow_where = visible_change(ideal, render, within=~ref)
    shrink_where = visible_change(ideal, render, within=ref)
    assert grow_where[60:70, 30:70].all() and not grow_where[20:57, 22:30].any()
    assert shrink_where[20:60, 30:34].all() and not shrink_where[52:57, 62:70].any()
    kw = dict(tolerance_px=2, product_area=float(ref.sum()))
    unsplit = silhouette_change(ideal, render, est, where=visible_change(ideal, render), **kw)
    split = silhouette_change(ideal, render, est, where=grow_where, shrink_where=shrink_where, **kw)
    band = (10 - 2) * 40  # the kept band beyond the 2 px outline tolerance
    lost = 40 * (4 - 2)  # the lost columns beyond it (the 2 px next to the outline are tolerated)
    assert split == pytest.approx((band + lost) / 1600, rel=0.15)
    # Unsplit, the flips within reach of a change count too: a column of the strip gained
    # beside the lost columns (40 px) and a row of the dropped corner (8 px).
    assert unsplit - split == pytest.approx(48 / 1600, abs=4 / 1600)

    def honest(image: np.ndarray) -> np.ndarray:
        return (image[..., 0] < 128).astype(np.float32)

    # An estimator that does not flip is scored the same either way.
    assert silhouette_change(
        ideal, render, honest, where=grow_where, shrink_where=shrink_where, **kw
    ) == pytest.approx(silhouette_change(ideal, render, honest, where=visible_change(ideal, render), **kw))

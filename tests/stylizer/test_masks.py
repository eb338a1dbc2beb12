"""Product masks: studio scenes with gradients, shadows, frame-filling products; user masks win."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from stylizer.image_io import load_image
from stylizer.masks import binarize, product_mask


def _studio(h: int = 240, w: int = 180, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Graded light-grey backdrop, a soft shadow, a textured navy 'garment'; returns (rgb, truth)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 238 - 18 * ((x - w / 2) ** 2 + (y - h / 2) ** 2) / (w * w)  # vignette
    img = np.repeat(base[..., None], 3, axis=2)
    shadow = np.exp(-(((x - w / 2) / (w * 0.3)) ** 2) - ((y - h * 0.82) / (h * 0.04)) ** 2)
    img *= 1 - 0.18 * shadow[..., None]  # soft grey shadow under the product
    truth = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth, (w // 2, int(h * 0.45)), (w // 4, int(h * 0.33)), 0, 0, 360, 1, -1)
    navy = np.array([30, 40, 90], np.float32) + rng.normal(0, 6, (h, w, 3)).astype(np.float32)
    img = np.where(truth[..., None] > 0, navy, img)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)  # lens softness: edges are never hard
    return np.clip(img, 0, 255).astype(np.uint8), truth.astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_estimated_mask_finds_product_not_shadow() -> None:
    rgb, truth = _studio()
    mask = product_mask(rgb)
    assert mask.shape == truth.shape and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    hard = binarize(mask)
    assert _iou(hard, truth) > 0.93
    h, w = truth.shape
    shadow_band = np.zeros_like(truth)
    shadow_band[int(h * 0.80) : int(h * 0.85), w // 3 : 2 * w // 3] = True
    shadow_band &= ~truth
    assert hard[shadow_band].mean() < 0.2  # the shadow is scene, not product


def test_mask_edges_are_soft() -> None:
    rgb, truth = _studio()
    mask = product_mask(rgb)
    edge = cv2.morphologyEx(truth.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3))) > 0
    soft = (mask > 0.05) & (mask < 0.95)
    assert soft[edge].mean() > 0.5
    assert soft.sum() < 0.1 * mask.size  # soft only at the seam


def test_product_filling_the_frame_with_light_corners() -> None:
    # A big pink object touching three sides, like a bra shot: the border is mostly product.
    h, w = 200, 160
    rgb = np.full((h, w, 3), 236, np.uint8)
    truth = np.zeros((h, w), np.uint8)
    cv2.rectangle(truth, (0, 30), (w - 1, h - 40), 1, -1)
    rgb[truth > 0] = (225, 170, 170)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.6)
    hard = binarize(product_mask(rgb))
    assert _iou(hard, truth.astype(bool)) > 0.9


def test_empty_backdrop_gives_empty_mask() -> None:
    rgb = np.full((120, 90, 3), 240, np.uint8)
    assert product_mask(rgb).max() == 0.0


def test_user_mask_and_alpha_win() -> None:
    rgb, truth = _studio()
    user = np.zeros(truth.shape, np.float32)
    user[:10, :10] = 1.0
    np.testing.assert_array_equal(product_mask(rgb, user_mask=user), user)
    alpha = np.zeros(truth.shape, np.uint8)
    alpha[50:60, 50:60] = 255
    got = product_mask(rgb, alpha=alpha)
    assert got[55, 55] == 1.0 and got[0, 0] == 0.0 and got.sum() == 100
    # the user mask beats the alpha channel, and is resized to the image
    small = np.ones((12, 9), np.uint8) * 255
    assert product_mask(rgb, alpha=alpha, user_mask=small).min() == 1.0


def test_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        product_mask(np.zeros((10, 10), np.uint8))


def test_binarize_erodes() -> None:
    m = np.zeros((20, 20), np.float32)
    m[5:15, 5:15] = 1.0
    assert binarize(m).sum() == 100 and binarize(m, erode_px=1).sum() == 64


def test_real_catalog_masks_are_plausible(shared_data: Path) -> None:
    """On real studio photos: a product is found, the frame border is background."""
    paths = sorted((shared_data / "hm" / "images").glob("*.jpg"))[::6]
    assert paths
    for path in paths:
        rgb = load_image(path, max_side=256).rgb
        hard = binarize(product_mask(rgb))
        frac = hard.mean()
        assert 0.03 < frac < 0.9, f"{path.name}: product covers {frac:.2f} of the frame"
        ring = np.ones_like(hard)
        ring[3:-3, 3:-3] = False
        assert hard[ring].mean() < 0.5, f"{path.name}: border classified as product"


def test_mask_is_deterministic_whatever_opencv_rng_state(shared_data: Path) -> None:
    """GrabCut draws from OpenCV's RNG: the mask must not depend on what used it before.

    Executors compute masks in different processes (local loop, Ray actors); a mask
    that changed with the RNG state made their renders of the same job differ.
    """
    paths = sorted((shared_data / "hm" / "images").glob("*.jpg"))[:4]
    for path in paths:
        rgb = load_image(path, max_side=320).rgb
        first = product_mask(rgb)
        cv2.randu(np.empty((64, 64), np.uint8), 0, 255)  # advance the thread's RNG
        assert np.array_equal(first, product_mask(rgb)), path.name


def _white_on_grey(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A white T-shirt-like garment on light-grey paper: nearly the backdrop's colour.

    The garment is one or two lightness units darker than the paper (like a soft
    shadow), with a fabric texture, a few folds and a thin shaded edge; what
    tells it apart is its outline and texture, not its colour.
    """
    rng = np.random.default_rng(seed)
    h, w = 240, 180
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    paper = 236 - 6 * y / h  # graded sweep
    truth = np.zeros((h, w), np.uint8)
    cv2.rectangle(truth, (55, 50), (125, 200), 1, -1)  # body
    cv2.rectangle(truth, (30, 50), (150, 95), 1, -1)  # sleeves
    shirt = 233 + rng.normal(0, 1.5, (h, w)) + 3 * np.sin(x / 5.0) * (np.abs(x - 90) < 20)
    img = np.where(truth > 0, shirt, paper + rng.normal(0, 0.4, (h, w)))
    hem = cv2.morphologyEx(truth, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    img = np.where(hem & (truth > 0), img - 10, img)  # the fabric's edge catches a little shade
    shadow = cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 6) * (1 - truth)
    img = img - 6 * shadow  # soft contact shadow around the garment
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.7)
    rgb = np.repeat(np.clip(img, 0, 255)[..., None], 3, axis=2).astype(np.uint8)
    return rgb, truth.astype(bool)


def test_white_garment_on_light_grey_is_found_by_outline_and_texture() -> None:
    rgb, truth = _white_on_grey()
    hard = binarize(product_mask(rgb))
    assert _iou(hard, truth) > 0.85
    # and the soft shadow around it stays background
    ring = (cv2.dilate(truth.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0) & ~cv2.dilate(
        truth.astype(np.uint8), np.ones((7, 7), np.uint8)
    ).astype(bool)
    assert hard[ring].mean() < 0.1


def test_smooth_backdrop_enclosed_by_a_product_stays_background() -> None:
    # A dark ring (a bag handle, an arm against the body) around a patch of plain paper.
    h, w = 200, 160
    rgb = np.full((h, w, 3), 236, np.uint8)
    cv2.ellipse(rgb, (80, 100), (55, 70), 0, 0, 360, (40, 30, 30), 14)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.7)
    hard = binarize(product_mask(rgb))
    assert not hard[100, 80] and hard[100, 80 - 55]
    inner = np.zeros((h, w), np.uint8)
    cv2.ellipse(inner, (80, 100), (40, 55), 0, 0, 360, 1, -1)
    assert hard[inner > 0].mean() < 0.05

"""Procedural product photos, their exact masks, and procedural style images.

Product photos imitate catalogue shots: one product (t-shirt, jacket, mug, shoe or
bag) in a solid colour or a simple pattern, on a plain light background with a
soft shadow.  The product is drawn from a binary silhouette, and that silhouette
is saved as the ground-truth mask, so mask and colour-preservation tests have an
exact answer to compare against.

Style images are >= 12 visually distinct procedural textures.  Their palette
(hue, spread, saturation, contrast) and a few texture parameters come from the
style's planted latent vector, so styles with close latents look alike, as
they would for real paintings that a shopper likes for the same reasons.

Every image has its own seeded generator, so images are identical for a seed no
matter in which order (or thread) they are drawn.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "CATEGORIES",
    "PATTERNS",
    "STYLE_KINDS",
    "ProductSpec",
    "product_spec",
    "draw_product",
    "draw_style",
    "style_name_and_tags",
]

CATEGORIES = ("garment", "mug", "shoe", "bag")
PATTERNS = ("solid", "stripes", "checks", "dots")

# Named product colours (RGB).  Items pick the nearest entry to a latent-derived hue so
# the "colour" attribute is honest.  No near-white entries: the product must stand out
# from the light background.
_COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (196, 32, 38)),
    ("orange", (226, 112, 28)),
    ("mustard", (205, 160, 30)),
    ("olive", (110, 120, 40)),
    ("green", (40, 140, 70)),
    ("teal", (20, 128, 128)),
    ("sky blue", (70, 150, 210)),
    ("blue", (35, 70, 170)),
    ("purple", (110, 50, 150)),
    ("pink", (215, 90, 150)),
    ("maroon", (110, 25, 40)),
    ("navy", (25, 35, 80)),
    ("brown", (110, 70, 40)),
    ("charcoal", (55, 55, 60)),
    ("black", (22, 22, 24)),
    ("grey", (125, 125, 130)),
)


def _latent6(latent: np.ndarray) -> np.ndarray:
    """Pad/cut a latent to 6 numbers: image parameters read fixed slots."""
    out = np.zeros(6)
    lat = np.asarray(latent, dtype=np.float64).ravel()[:6]
    out[: lat.size] = lat
    return out


def _squash(x: float) -> float:
    """Map a latent coordinate (roughly N(0, 1)) to (0, 1)."""
    return float(1.0 / (1.0 + np.exp(-1.5 * x)))


# --------------------------------------------------------------------------- products


@dataclass(frozen=True)
class ProductSpec:
    """What an item looks like; also written to ``items.csv`` as its attributes."""

    category: str
    subtype: str
    colour: str
    rgb: tuple[int, int, int]
    pattern: str
    pattern_rgb: tuple[int, int, int]
    price: float


def product_spec(rng: np.random.Generator, latent: np.ndarray) -> ProductSpec:
    """Choose category, colour, pattern and price for one item.

    Colour and pattern follow the item's latent (hue from two coordinates, darkness and
    pattern from others), so the item's proxy style code and its picture agree.
    """
    lat = _latent6(latent)
    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    subtype = {
        "garment": ("t-shirt", "jacket")[int(rng.integers(2))],
        "mug": "mug",
        "shoe": "sneaker",
        "bag": "tote",
    }[category]
    hue = (np.arctan2(lat[1], lat[0]) / (2 * np.pi)) % 1.0
    dark = _squash(lat[2])
    vivid = _squash(lat[5] + 0.8)  # mostly colourful items, some neutrals
    candidates = []
    for _, rgb in _COLOURS:
        h, sat, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
        dh = min(abs(h - hue), 1 - abs(h - hue)) * sat  # hue is meaningless for greys
        candidates.append(
            dh + 0.6 * abs((1 - v) - dark) + 0.4 * abs(sat - vivid) + 0.05 * rng.random()
        )
    name, base = _COLOURS[int(np.argmin(candidates))]
    r, g, b = (int(np.clip(c + rng.integers(-10, 11), 0, 255)) for c in base)
    rgb = (r, g, b)
    pattern = (
        PATTERNS[int(np.argmax(lat[3:6] + rng.normal(0, 0.5, 3))) + 1] if lat[3] > -0.3 else "solid"
    )
    # Pattern colour: a lighter or darker version of the main colour, never background-like.
    mix = 0.45 if np.mean(rgb) < 110 else -0.5
    target = 235.0 if mix > 0 else 0.0
    pr, pg, pb = (min(int(round(c + abs(mix) * (target - c))), 205) for c in rgb)
    pattern_rgb = (pr, pg, pb)
    price = float(
        {"garment": 24.0, "mug": 9.0, "shoe": 49.0, "bag": 34.0}[category] * rng.uniform(0.7, 2.2)
    )
    return ProductSpec(category, subtype, name, rgb, pattern, pattern_rgb, round(price - 0.01, 2))


def _silhouette(
    spec: ProductSpec, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Binary (0/255) product silhouette and its trim part (a shoe's sole), drawn in
    512-px coordinates and scaled."""
    f = size / 512.0
    scale = rng.uniform(0.85, 1.05)
    dx, dy = rng.uniform(-20, 20), rng.uniform(-15, 15)

    def pts(coords: list[tuple[float, float]]) -> np.ndarray:
        a = np.asarray(coords, dtype=np.float64)
        a = (a - 256.0) * scale + 256.0 + (dx, dy)
        return np.round(a * f).astype(np.int32)

    def s(v: float) -> int:
        return max(1, int(round(v * scale * f)))

    def c(x: float, y: float) -> tuple[int, int]:
        return (
            int(round(((x - 256) * scale + 256 + dx) * f)),
            int(round(((y - 256) * scale + 256 + dy) * f)),
        )

    mask = np.zeros((size, size), np.uint8)
    trim = np.zeros((size, size), np.uint8)
    if spec.subtype == "t-shirt":
        poly = [
            (215, 105), (235, 124), (256, 130), (277, 124), (297, 105), (362, 128),
            (428, 205), (386, 242), (346, 200), (348, 420), (164, 420), (166, 200),
            (126, 242), (84, 205), (150, 128),
        ]  # fmt: skip
        cv2.fillPoly(mask, [pts(poly)], 255)
    elif spec.subtype == "jacket":
        poly = [
            (218, 100), (256, 140), (294, 100), (360, 120), (400, 190), (420, 400),
            (372, 404), (352, 230), (350, 430), (162, 430), (160, 230), (140, 404),
            (92, 400), (112, 190), (152, 120),
        ]  # fmt: skip
        cv2.fillPoly(mask, [pts(poly)], 255)
    elif spec.subtype == "mug":
        cv2.ellipse(mask, c(330, 285), (s(62), s(72)), 0, 0, 360, 255, s(26))
        cv2.rectangle(mask, c(172, 170), c(332, 380), 255, -1)
        cv2.ellipse(mask, c(252, 380), (s(80), s(26)), 0, 0, 180, 255, -1)
        cv2.ellipse(mask, c(252, 170), (s(80), s(20)), 0, 180, 360, 255, -1)
        # keep the handle's hole empty: draw the ring, then clear what is inside it
        hole = np.zeros_like(mask)
        cv2.ellipse(hole, c(330, 285), (s(49), s(59)), 0, 0, 360, 255, -1)
        hole[:, : c(334, 0)[0]] = 0
        mask[hole > 0] = 0
    elif spec.subtype == "sneaker":
        upper = [
            (112, 365), (114, 310), (128, 262), (160, 240), (205, 236), (228, 250),
            (262, 280), (330, 296), (390, 312), (418, 335), (425, 365),
        ]  # fmt: skip
        cv2.fillPoly(mask, [pts(upper)], 255)
        cv2.ellipse(mask, c(395, 345), (s(38), s(28)), 0, 0, 360, 255, -1)
        cv2.fillPoly(trim, [pts([(100, 360), (432, 360), (436, 392), (104, 392)])], 255)
        cv2.ellipse(trim, c(420, 376), (s(16), s(16)), 0, 0, 360, 255, -1)
        mask |= trim
    else:  # tote
        cv2.fillPoly(mask, [pts([(150, 215), (362, 215), (392, 425), (120, 425)])], 255)
        cv2.ellipse(mask, c(256, 215), (s(72), s(88)), 0, 180, 360, 255, s(16))
    return mask, trim


def _pattern_layer(spec: ProductSpec, size: int, rng: np.random.Generator) -> np.ndarray:
    """Full-frame RGB float image of the product's fabric/glaze (masked later)."""
    img = np.empty((size, size, 3), np.float32)
    img[:] = spec.rgb
    if spec.pattern == "solid":
        return img
    second = np.asarray(spec.pattern_rgb, np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = size / rng.uniform(10, 18)
    if spec.pattern == "stripes":
        coord = yy if rng.random() < 0.6 else (xx + yy) / np.sqrt(2)
        on = (coord // (period / 2)) % 2 == 1
    elif spec.pattern == "checks":
        on = ((yy // (period / 2)) + (xx // (period / 2))) % 2 == 1
    else:  # dots
        cell = period * 0.8
        cy, cx = (yy % cell) - cell / 2, (xx % cell) - cell / 2
        on = cy**2 + cx**2 < (cell * 0.22) ** 2
    img[on] = second
    return img


def draw_product(
    spec: ProductSpec, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Render one product photo; returns ``(rgb uint8 HxWx3, mask uint8 HxW in {0, 255})``.

    The photo's edge is anti-aliased with a slightly blurred copy of the mask while the
    returned mask stays binary, as a real cut-out would be.
    """
    mask, trim = _silhouette(spec, size, rng)
    m = mask.astype(np.float32) / 255.0

    tint = rng.uniform(-4, 4, 3)
    base = rng.uniform(236, 248)
    ramp = np.linspace(3, -3, size, dtype=np.float32)[:, None, None]
    bg = np.clip(base + tint[None, None, :] + ramp, 0, 255).astype(np.float32)
    bg = np.broadcast_to(bg, (size, size, 3)).copy()

    # Soft shadow: the silhouette shifted down-right plus a floor ellipse, blurred.
    sigma = max(1.0, size / 40)
    shift = np.float32([[1, 0, size * 0.02], [0, 1, size * 0.025]])
    shadow = cv2.warpAffine(m, shift, (size, size))
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    floor = np.zeros_like(m)
    cv2.ellipse(
        floor,
        (int(xs.mean()), int(ys.max())),
        (max(1, int((xs.max() - xs.min()) * 0.45)), max(1, int(size * 0.025))),
        0, 0, 360, 1.0, -1,
    )  # fmt: skip
    shadow = cv2.GaussianBlur(np.maximum(shadow * 0.6, floor), (0, 0), sigma)
    bg *= (1.0 - 0.28 * shadow)[..., None]

    # Product: pattern, gentle top-left lighting, darker rim so the edge reads clearly.
    prod = _pattern_layer(spec, size, rng)
    # Trim (a sole) in a neutral that contrasts with the main colour and the background.
    prod[trim > 0] = (196, 194, 188) if np.mean(spec.rgb) < 100 else (48, 46, 46)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    light = 1.06 - 0.14 * (0.6 * yy + 0.4 * xx)
    prod *= light[..., None]
    k = max(1, size // 128)
    inner = cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
    rim = (mask > 0) & (inner == 0)
    prod[rim] *= 0.75

    soft = cv2.GaussianBlur(m, (0, 0), 0.6)[..., None]
    # Inside the true mask keep the product exactly; soften only the outer edge.
    soft = np.where(mask[..., None] > 0, 1.0, soft)
    img = soft * prod + (1.0 - soft) * bg
    return np.clip(np.round(img), 0, 255).astype(np.uint8), mask


# --------------------------------------------------------------------------- styles


def _palette(lat: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` RGB colours (float, 0..255) whose hue, spread, saturation and contrast follow the latent."""
    hue = (np.arctan2(lat[1], lat[0]) / (2 * np.pi)) % 1.0
    spread = 0.04 + 0.3 * _squash(lat[2])
    sat = 0.35 + 0.6 * _squash(lat[3])
    contrast = 0.3 + 0.6 * _squash(lat[4])
    hues = hue + spread * np.linspace(-1, 1, n) + rng.normal(0, 0.015, n)
    vals = np.linspace(0.97 - contrast, 0.97, n)
    rng.shuffle(vals)
    cols = [colorsys.hsv_to_rgb(h % 1.0, sat, v) for h, v in zip(hues, vals, strict=True)]
    return np.asarray(cols, np.float32) * 255.0


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Blurred white noise normalised to [0, 1]: the base of organic textures."""
    small = max(4, int(size / scale))
    z = rng.random((small, small)).astype(np.float32)
    z = cv2.resize(z, (size, size), interpolation=cv2.INTER_CUBIC)
    z = cv2.GaussianBlur(z, (0, 0), max(1.0, size / small / 2))
    z -= z.min()
    return z / max(float(z.max()), 1e-6)


def _map_palette(field: np.ndarray, pal: np.ndarray) -> np.ndarray:
    """Colour a [0, 1] scalar field by interpolating along the palette."""
    pos = np.clip(field, 0, 1) * (len(pal) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(pal) - 1)
    t = (pos - lo)[..., None]
    return pal[lo] * (1 - t) + pal[hi] * t


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinate planes (float32) for vectorised textures."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def _stripes(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 4, rng)
    yy, xx = _grid(size)
    ang = np.pi * _squash(lat[5])
    t = xx * np.cos(ang) + yy * np.sin(ang)
    t += size * 0.015 * np.sin(yy / size * 2 * np.pi * rng.uniform(1, 3))
    width = size / rng.uniform(9, 16)
    idx = (np.floor(t / width).astype(np.int64)) % len(pal)
    return pal[idx]


def _dots(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 5, rng)
    img = np.empty((size, size, 3), np.float32)
    img[:] = pal[0]
    step = size / rng.uniform(8, 13)
    for gy in np.arange(step / 2, size, step):
        for gx in np.arange(step / 2, size, step):
            r = int(step * rng.uniform(0.18, 0.42))
            ctr = (int(gx + rng.normal(0, step * 0.08)), int(gy + rng.normal(0, step * 0.08)))
            col = pal[1 + int(rng.integers(len(pal) - 1))]
            cv2.circle(img, ctr, r, col.tolist(), -1, cv2.LINE_AA)
    return img


def _mosaic(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 6, rng)
    n = int(40 + 60 * _squash(lat[5]))
    seeds = rng.random((n, 2)) * size
    small = size // 4
    yy, xx = np.mgrid[0:small, 0:small].astype(np.float32) * 4
    d = (yy[..., None] - seeds[:, 1]) ** 2 + (xx[..., None] - seeds[:, 0]) ** 2
    lab = np.argmin(d, axis=-1).astype(np.int32)
    lab = cv2.resize(lab.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    lab = lab.astype(np.int64)
    colours = pal[rng.integers(0, len(pal), size=n)]
    img = colours[lab]
    edge = np.zeros((size, size), np.uint8)
    edge[:-1, :] |= (lab[:-1, :] != lab[1:, :]).astype(np.uint8)
    edge[:, :-1] |= (lab[:, :-1] != lab[:, 1:]).astype(np.uint8)
    edge = cv2.dilate(edge, np.ones((3, 3), np.uint8)) > 0
    img[edge] = (30, 28, 26)
    return img


def _watercolour(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 5, rng)
    img = np.full((size, size, 3), 248.0, np.float32)
    for k in range(6):
        field = _smooth_noise(rng, size, rng.uniform(40, 90))
        blob = (field > rng.uniform(0.5, 0.65)).astype(np.float32)
        blob = cv2.GaussianBlur(blob, (0, 0), size / 90)
        edge = np.clip(blob - cv2.GaussianBlur(blob, (0, 0), size / 60), 0, 1) * 2.0
        alpha = (0.45 * blob + 0.35 * edge)[..., None]
        img = img * (1 - alpha) + pal[k % len(pal)] * alpha
    grain = _smooth_noise(rng, size, 3)[..., None]
    return img * (0.94 + 0.06 * grain)


def _neon(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 4, rng)
    pal = pal / np.maximum(pal.max(axis=1, keepdims=True), 1) * 255
    glow = np.zeros((size, size, 3), np.float32)
    for _ in range(int(6 + 6 * _squash(lat[5]))):
        n = 5
        pts = (rng.random((n, 2)) * size).astype(np.int32)
        col = pal[int(rng.integers(len(pal)))].tolist()
        cv2.polylines(glow, [pts], False, col, max(2, size // 64), cv2.LINE_AA)
    halo = cv2.GaussianBlur(glow, (0, 0), size / 50)
    img = np.full((size, size, 3), 12.0, np.float32) + 1.8 * halo + glow
    return img


def _woodcut(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 3, rng)
    paper = 0.25 * pal[0] + 0.75 * np.array([240, 228, 205], np.float32)
    ink = 0.2 * pal[1] + np.array([20, 15, 12], np.float32)
    field = _smooth_noise(rng, size, 70) * 3.0 + _grid(size)[0] / size
    bands = np.sin(field * rng.uniform(18, 28)) > 0.1
    yy, xx = _grid(size)
    hatch = np.sin((xx + yy) * 2 * np.pi / max(3, size / 80)) > 0.3
    shade = _smooth_noise(rng, size, 120) < 0.4
    on = bands | (hatch & shade)
    img = np.empty((size, size, 3), np.float32)
    img[:] = paper
    img[on] = ink
    return img


def _cubist(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 6, rng)
    img = np.empty((size, size, 3), np.float32)
    img[:] = pal[0]
    for _ in range(70):
        ctr = rng.random(2) * size
        pts = (ctr + rng.normal(0, size * 0.12, (3, 2))).astype(np.int32)
        col = pal[int(rng.integers(len(pal)))]
        cv2.fillPoly(img, [pts], col.tolist(), cv2.LINE_AA)
        cv2.polylines(img, [pts], True, (35, 30, 30), max(1, size // 170), cv2.LINE_AA)
    return img


def _pointillism(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 5, rng)
    under = _map_palette(_smooth_noise(rng, size, 60), pal)
    img = np.full((size, size, 3), 245.0, np.float32)
    n = int(size * size / 40)
    ys = rng.integers(0, size, n)
    xs = rng.integers(0, size, n)
    r = max(1, size // 110)
    cols = under[ys, xs] + rng.normal(0, 18, (n, 3))
    for y, x, col in zip(ys.tolist(), xs.tolist(), cols.tolist(), strict=True):
        cv2.circle(img, (x, y), r, col, -1)
    return img


def _waves(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 5, rng)
    yy, xx = _grid(size)
    field = np.zeros((size, size), np.float32)
    freq = rng.uniform(0.05, 0.09) * 512 / size
    for _ in range(2):
        cy, cx = rng.random(2) * size
        field += np.sin(np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) * freq)
    return _map_palette((field + 2) / 4, pal)


def _plaid(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 4, rng)
    period = size / rng.uniform(3, 5)
    yy, xx = _grid(size)

    def bands(c: np.ndarray) -> np.ndarray:
        t = (c % period) / period
        return np.select([t < 0.35, t < 0.45, t < 0.8], [0, 1, 2], 3)

    h = pal[bands(yy)]
    v = pal[bands(xx)]
    img = 0.5 * h + 0.5 * v
    thin = ((yy % (period / 4)) < max(1, size / 256)) | ((xx % (period / 4)) < max(1, size / 256))
    img[thin] *= 0.6
    return img


def _ink(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 3, rng)
    paper = np.array([243, 238, 226], np.float32)
    layer = np.zeros((size, size), np.float32)
    accent = np.zeros((size, size), np.float32)
    for _ in range(int(12 + 12 * _squash(lat[5]))):
        target = accent if rng.random() < 0.35 else layer
        cx, cy = rng.random(2) * size
        cv2.circle(target, (int(cx), int(cy)), int(size * rng.uniform(0.02, 0.08)), 1.0, -1)
        for _ in range(18):
            a, d = rng.uniform(0, 2 * np.pi), size * rng.uniform(0.04, 0.2)
            p = (int(cx + d * np.cos(a)), int(cy + d * np.sin(a)))
            cv2.circle(target, p, max(1, int(size * rng.uniform(0.003, 0.015))), 1.0, -1)
    layer = cv2.GaussianBlur(layer, (0, 0), size / 300 + 0.5) > 0.5
    accent = cv2.GaussianBlur(accent, (0, 0), size / 300 + 0.5) > 0.5
    img = np.empty((size, size, 3), np.float32)
    img[:] = paper
    img[accent] = pal[0] * 0.8
    img[layer] = (18, 18, 22)
    return img


def _gradient_bands(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 6, rng)
    yy, xx = _grid(size)
    t = yy / size + 0.05 * np.sin(xx / size * 2 * np.pi * rng.uniform(1, 2.5))
    n = len(pal)
    pos = np.clip(t, 0, 0.999) * n
    band = np.floor(pos).astype(np.int64)
    frac = (pos - band)[..., None]
    return pal[band] * (0.85 + 0.3 * frac)


def _brushstrokes(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 5, rng)
    img = np.empty((size, size, 3), np.float32)
    img[:] = pal[0]
    flow = _smooth_noise(rng, size, 120) * 2 * np.pi
    length = size * 0.05
    for _ in range(900):
        x, y = int(rng.integers(size)), int(rng.integers(size))
        a = float(flow[y, x])
        p2 = (int(x + length * np.cos(a)), int(y + length * np.sin(a)))
        col = pal[int(rng.integers(len(pal)))] + rng.normal(0, 10, 3)
        cv2.line(img, (x, y), p2, col.tolist(), max(2, size // 60), cv2.LINE_AA)
    return img


def _halftone(rng: np.random.Generator, lat: np.ndarray, size: int) -> np.ndarray:
    pal = _palette(lat, 3, rng)
    field = _smooth_noise(rng, size, 50)
    yy, xx = _grid(size)
    cell = size / rng.uniform(28, 40)
    cy, cx = (yy % cell) - cell / 2, (xx % cell) - cell / 2
    on = np.sqrt(cy**2 + cx**2) < field * cell * 0.62
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.array([245, 242, 235], np.float32)
    img[on] = pal[np.argmin(pal.sum(axis=1))]
    return img


StyleFn = Callable[[np.random.Generator, np.ndarray, int], np.ndarray]

# name, tags, generator.  Order is the style index order (style k uses entry k % len).
STYLE_KINDS: tuple[tuple[str, tuple[str, ...], StyleFn], ...] = (
    ("stripes", ("geometric", "bold", "linear"), _stripes),
    ("dots", ("geometric", "playful", "round"), _dots),
    ("mosaic", ("geometric", "tiles", "voronoi"), _mosaic),
    ("watercolour", ("organic", "soft", "painterly"), _watercolour),
    ("neon", ("dark", "glow", "linear"), _neon),
    ("woodcut", ("print", "monochrome", "hatching"), _woodcut),
    ("cubist", ("geometric", "shards", "painterly"), _cubist),
    ("pointillism", ("painterly", "dots", "impressionist"), _pointillism),
    ("waves", ("organic", "concentric", "optical"), _waves),
    ("plaid", ("textile", "geometric", "check"), _plaid),
    ("ink", ("organic", "splash", "monochrome"), _ink),
    ("gradient-bands", ("soft", "bands", "minimal"), _gradient_bands),
    ("brushstrokes", ("painterly", "expressive", "organic"), _brushstrokes),
    ("halftone", ("print", "dots", "pop"), _halftone),
)


def style_name_and_tags(index: int, latent: np.ndarray) -> tuple[str, list[str]]:
    """Name and tags of style ``index``; the palette adds a warm/cool and dark/light tag."""
    name, tags, _ = STYLE_KINDS[index % len(STYLE_KINDS)]
    lat = _latent6(latent)
    rounds = index // len(STYLE_KINDS)
    if rounds:
        name = f"{name}-{rounds + 1}"
    hue = (np.arctan2(lat[1], lat[0]) / (2 * np.pi)) % 1.0
    warmth = "warm" if hue < 0.17 or hue > 0.83 else "cool"
    tone = "high-contrast" if _squash(lat[4]) > 0.5 else "low-contrast"
    return name, [*tags, warmth, tone]


def draw_style(index: int, latent: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Render style image ``index`` (RGB uint8, ``size`` square) from its planted latent."""
    _, _, fn = STYLE_KINDS[index % len(STYLE_KINDS)]
    img = fn(rng, _latent6(latent), size)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)

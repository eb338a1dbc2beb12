"""Procedural backdrop materials: the scenes a shop actually shoots products on.

A painting at full strength behind every product is a demo, not a shop.  These
are the surfaces merchandisers use (marble, linen, terrazzo, kraft paper,
concrete, a studio gradient), drawn procedurally so that the demo ships them
without any image files.  Used as style images they give the generator a
material's palette and grain; the demo's style library lists them next to the
artworks with a higher ``strength`` (a material may show fully, a painting
only as a hint).

Every function is deterministic in ``(size, seed)`` and returns RGB uint8.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

__all__ = ["MATERIALS", "MATERIAL_STRENGTH", "draw_material"]

#: Scene strength the demo library gives a material (artworks get less).
MATERIAL_STRENGTH = 0.85


def _noise(rng: np.random.Generator, size: int, cells: tuple[int, ...]) -> np.ndarray:
    """Smooth multi-octave noise in about [-1, 1]."""
    out = np.zeros((size, size), np.float32)
    for i, c in enumerate(cells):
        grid = rng.standard_normal((c + 1, c + 1)).astype(np.float32)
        out += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) / (1.6**i)
    return out / max(float(np.abs(out).max()), 1e-6)


def _tint(grey: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    return np.clip(grey[..., None] * np.asarray(colour, np.float32) / 255.0, 0, 255)


def _marble(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    turb = _noise(rng, size, (3, 6, 12, 24))
    veins = np.abs(np.sin((x * 3.0 + y * 1.5 + 1.8 * turb) * np.pi))
    grey = 236 - 70 * (1 - veins) ** 6 - 6 * _noise(rng, size, (8, 32))
    return _tint(grey, (255, 252, 247))


def _linen(rng: np.random.Generator, size: int) -> np.ndarray:
    warp = rng.normal(0, 1, (1, size)).astype(np.float32)
    weft = rng.normal(0, 1, (size, 1)).astype(np.float32)
    warp = cv2.GaussianBlur(warp, (0, 0), 0.8)
    weft = cv2.GaussianBlur(weft, (0, 0), 0.8)
    grey = 214 + 7 * warp + 7 * weft + 5 * _noise(rng, size, (4, 16))
    return _tint(grey, (255, 246, 228))


def _terrazzo(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.full((size, size, 3), (226, 221, 214), np.float32)
    img += 4 * _noise(rng, size, (16, 64))[..., None]
    palette = np.array([[160, 150, 140], [120, 130, 135], [200, 160, 140], [90, 90, 95]])
    for _ in range(int(size * size / 900)):
        cx, cy = rng.integers(0, size, 2)
        r = int(rng.integers(2, max(3, size // 40)))
        pts = np.array(
            [
                [cx + r * np.cos(a) * rng.uniform(0.5, 1.3), cy + r * np.sin(a) * rng.uniform(0.5, 1.3)]
                for a in np.linspace(0, 2 * np.pi, 6, endpoint=False)
            ],
            np.int32,
        )
        cv2.fillPoly(img, [pts], palette[rng.integers(len(palette))].tolist())
    return img


def _kraft(rng: np.random.Generator, size: int) -> np.ndarray:
    fibres = rng.normal(0, 1, (size, size)).astype(np.float32)
    fibres = cv2.GaussianBlur(fibres, (0, 0), sigmaX=3.0, sigmaY=0.6)
    grey = 190 + 10 * fibres / max(float(fibres.std()), 1e-6) + 8 * _noise(rng, size, (3, 10))
    return _tint(grey, (255, 214, 160))


def _concrete(rng: np.random.Generator, size: int) -> np.ndarray:
    grey = 172 + 14 * _noise(rng, size, (4, 12, 40)) + 6 * rng.normal(0, 1, (size, size))
    pores = rng.random((size, size)) < 0.004
    grey[cv2.dilate(pores.astype(np.uint8), np.ones((2, 2), np.uint8)) > 0] -= 45
    return _tint(cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 0.6), (250, 250, 248))


def _studio_gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    hue = rng.uniform(0, 1)
    top = np.array(
        [200 + 30 * np.cos(2 * np.pi * hue), 205, 200 + 30 * np.sin(2 * np.pi * hue)], np.float32
    )
    bottom = np.array([246, 244, 240], np.float32)
    t = np.clip(0.25 + 0.9 * y - 0.3 * ((x - 0.5) ** 2), 0, 1)[..., None]
    return top * (1 - t) + bottom * t + rng.normal(0, 0.8, (size, size, 1))


MaterialFn = Callable[[np.random.Generator, int], np.ndarray]

#: name -> (tags, generator), in the order the demo lists them.
MATERIALS: dict[str, tuple[tuple[str, ...], MaterialFn]] = {
    "marble": (("material", "stone", "light", "veined"), _marble),
    "linen": (("material", "textile", "warm", "woven"), _linen),
    "terrazzo": (("material", "stone", "speckled", "light"), _terrazzo),
    "kraft-paper": (("material", "paper", "warm", "fibrous"), _kraft),
    "concrete": (("material", "stone", "grey", "industrial"), _concrete),
    "studio-gradient": (("material", "studio", "soft", "minimal"), _studio_gradient),
}


def draw_material(name: str, size: int, seed: int = 0) -> np.ndarray:
    """Draw material ``name`` as a ``size`` x ``size`` RGB uint8 image (deterministic per seed)."""
    if name not in MATERIALS:
        raise ValueError(f"unknown material {name!r}; use one of {', '.join(MATERIALS)}")
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    rng = np.random.default_rng([seed, sorted(MATERIALS).index(name)])
    img = MATERIALS[name][1](rng, size)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)

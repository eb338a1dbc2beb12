"""Training data for the student: photo crops and style codes, sampled reproducibly.

Photos are decoded once and kept in memory at a modest size (the crops are small,
so full-resolution product shots would only cost memory and resize time).  Every
batch is drawn from a generator seeded by ``(seed, step)``, so a run resumed
from a checkpoint sees exactly the batches an uninterrupted run would have.

Style codes come from the style library plus blends: a pair interpolated at a
random point, or a random convex mix of three, so the student learns the code
space between the library's styles, not only its points (never-seen styles land
there).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name), or a clear error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return paths


def split_sorted(paths: Sequence[Path], n_train: int) -> tuple[list[Path], list[Path]]:
    """Deterministic split: the first ``n_train`` by file name train, the rest are held out."""
    ordered = sorted(paths, key=lambda p: p.name)
    if not 0 < n_train <= len(ordered):
        raise ValueError(f"cannot train on {n_train} of {len(ordered)} images")
    return ordered[:n_train], ordered[n_train:]


class PhotoCrops:
    """Random square crops (with random scale and horizontal flip) of in-memory photos.

    ``short_side``: each photo is stored with its short side at this many pixels;
    crops of ``size`` then cover between ``size/short_side`` and all of the short side.
    Unreadable photos are skipped and listed in ``skipped`` (path, reason).
    """

    def __init__(self, paths: Sequence[Path], size: int, short_side: int | None = None) -> None:
        from PIL import Image

        from stylizer.image_io import ImageError, load_image

        self.size = int(size)
        short = int(short_side or round(size * 2))
        self.images: list[np.ndarray] = []
        self.skipped: list[tuple[str, str]] = []
        for p in paths:
            try:
                rgb = load_image(p).rgb
            except ImageError as exc:
                self.skipped.append((str(p), str(exc)))
                continue
            h, w = rgb.shape[:2]
            scale = short / min(h, w)
            im = Image.fromarray(rgb).resize((max(size, round(w * scale)), max(size, round(h * scale))),
                                             Image.BILINEAR)  # fmt: skip
            self.images.append(np.asarray(im))
        if not self.images:
            raise ValueError("no readable training photos")

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, rng: np.random.Generator, batch: int) -> torch.Tensor:
        """``[batch, 3, size, size]`` float32 in [0, 1]."""
        import torch.nn.functional as F

        out = []
        for _ in range(batch):
            img = self.images[int(rng.integers(len(self.images)))]
            h, w = img.shape[:2]
            side = int(rng.integers(self.size, min(h, w) + 1))
            top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
            crop = torch.from_numpy(np.array(img[top:top + side, left:left + side]))
            t = crop.permute(2, 0, 1)[None].float() / 255.0
            if side != self.size:
                t = F.interpolate(t, size=(self.size, self.size), mode="bilinear",
                                  align_corners=False, antialias=True)  # fmt: skip
            if rng.random() < 0.5:
                t = t.flip(-1)
            out.append(t)
        return torch.cat(out).clamp_(0, 1)


class CodeSampler:
    """Style codes: a library code, a pair's interpolation, or a convex mix of three.

    ``p_library`` / ``p_pair`` set the shares (the rest are three-way mixes).
    """

    def __init__(self, codes: np.ndarray, p_library: float = 0.4, p_pair: float = 0.4) -> None:
        codes = np.asarray(codes, dtype=np.float32)
        if codes.ndim != 2 or codes.shape[0] < 1:
            raise ValueError(f"need a (K, D) array of style codes, got shape {codes.shape}")
        if not np.isfinite(codes).all():
            raise ValueError("style codes contain NaN or infinity")
        self.codes = codes
        self.p_library, self.p_pair = p_library, p_pair

    def sample(self, rng: np.random.Generator, batch: int) -> torch.Tensor:
        """``[batch, D]`` float32 codes."""
        k = len(self.codes)
        out = np.empty((batch, self.codes.shape[1]), np.float32)
        for i in range(batch):
            u = rng.random()
            if k == 1 or u < self.p_library:
                out[i] = self.codes[rng.integers(k)]
            elif u < self.p_library + self.p_pair:
                a, b = rng.choice(k, 2, replace=False)
                t = rng.random()
                out[i] = (1 - t) * self.codes[a] + t * self.codes[b]
            else:
                idx = rng.choice(k, min(3, k), replace=False)
                out[i] = rng.dirichlet(np.ones(len(idx))) @ self.codes[idx]
        return torch.from_numpy(out)

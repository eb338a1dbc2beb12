"""On-disk cache of estimated product masks, keyed by image content.

A fused mask costs about half a second per image (the salient prior and
GrabCut), while an item is rendered under every segment condition every night
and most items do not change.  The key is the SHA-256 of the exact pixels the
mask is estimated from (shape and bytes) plus :data:`stylizer.mask_fusion.MASK_VERSION`
and the method, so a changed photo, a different render size or a new mask
algorithm is a miss, never a stale hit.  Masks are stored as 8-bit PNGs
(a soft mask quantised to 1/255), written to a temp name and renamed, so a
crashed writer leaves no half file and concurrent writers (Ray actors) agree.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

__all__ = ["MaskCache", "mask_key"]


def mask_key(image: np.ndarray, method: str) -> str:
    """Hex key of ``image``'s pixels (shape included) for ``method`` under the current version."""
    from stylizer.mask_fusion import MASK_VERSION

    h = hashlib.sha256()
    h.update(f"{MASK_VERSION}|{method}|{image.shape}|{image.dtype}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


class MaskCache:
    """``get_or_compute(image, method, compute)``: the cached mask, or ``compute()`` stored.

    ``hits`` and ``misses`` count this instance's lookups (reported by the
    render stage and checked by the tests).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    def path(self, key: str) -> Path:
        """Where the mask with ``key`` lives (``<root>/<key[:2]>/<key>.png``)."""
        return self.root / key[:2] / f"{key}.png"

    def get_or_compute(
        self, image: np.ndarray, method: str, compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        """The mask of ``image`` (float32 in [0, 1] at its size), from disk or ``compute()``."""
        key = mask_key(image, method)
        path = self.path(key)
        cached = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
        if cached is not None and cached.shape == image.shape[:2]:
            self.hits += 1
            return cached.astype(np.float32) / 255.0
        self.misses += 1
        mask = np.clip(compute().astype(np.float32), 0.0, 1.0)
        quantised = np.rint(mask * 255.0).astype(np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".partial-", suffix=".png", dir=path.parent)
        os.close(fd)
        try:
            if not cv2.imwrite(tmp, quantised):
                raise OSError(f"cannot write mask cache file {tmp}")
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        # Return what a later hit returns, so a render does not depend on the cache state.
        return quantised.astype(np.float32) / 255.0

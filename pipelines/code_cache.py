"""Style codes cached by image content, across nights (``<work_dir>/code_cache/``).

Not a run file (it outlives runs), so it is not part of the run bundle: one
npz per encoder model version, keyed by the SHA-256 of each image's bytes, so
an unchanged catalogue costs one hash per image.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from stylizer.image_io import open_regular_file
from stylizer.networks import STYLE_DIM


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes (the cache key of its style code and renders)."""
    h = hashlib.sha256()
    # Never a plain open(): a FIFO in the image folder would block the night forever.
    with open_regular_file(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CodeCache:
    """Style codes by image hash for one model version, in one npz written atomically."""

    def __init__(self, folder: Path, version: str) -> None:
        self.path = folder / f"{version}.npz"
        self.codes: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path, allow_pickle=False) as z:
                self.codes = dict(zip(z["hashes"].tolist(), z["codes"], strict=True))

    def save(self) -> None:
        """Write the cache (temp file + rename, so a crash keeps the old one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hashes = np.array(sorted(self.codes), dtype=str)
        codes = (np.stack([self.codes[h] for h in hashes]) if len(hashes)
                 else np.zeros((0, STYLE_DIM)))
        tmp = self.path.with_name(self.path.name + ".partial.npz")
        np.savez(tmp, hashes=hashes, codes=codes.astype(np.float32))
        os.replace(tmp, self.path)

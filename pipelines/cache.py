"""Content-addressed cache of rendered product images.

A render is fully determined by the product image's bytes, the condition code
it was rendered with, the model version and the render parameters, so its
file name is the hash of those four.  An unchanged segment therefore costs
nothing the next night, and two runs that need the same render share one file.

Files are written to a temporary name in the destination folder and renamed,
so a reader (or a crash) never sees a partial file; leftovers of a killed
writer are swept by :meth:`RenderCache.sweep_partials` before a render stage.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from data.paths import resolve_under
from stylizer.image_io import encode_image

PARTIAL_MARK = ".partial-"
RENDER_FORMATS = ("png", "webp", "jpg")


def render_key(
    image_hash: str, condition_code: np.ndarray, model_version: str, params: dict[str, Any]
) -> str:
    """Hash of everything a render depends on.

    The condition code is rounded to 1e-5 before hashing so that the same
    blend computed twice (float noise in the last bits) maps to the same file.
    """
    h = hashlib.sha256()
    h.update(image_hash.encode())
    code = np.round(np.asarray(condition_code, dtype=np.float64), 5).astype(np.float32)
    h.update(code.tobytes())
    h.update(model_version.encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


def condition_hash(condition_code: np.ndarray) -> str:
    """Short stable id of a condition code (same rounding as :func:`render_key`)."""
    code = np.round(np.asarray(condition_code, dtype=np.float64), 5).astype(np.float32)
    return hashlib.sha256(code.tobytes()).hexdigest()[:16]


class RenderCache:
    """Render files under ``root`` as ``<key[:2]>/<key>.<fmt>``; atomic writes."""

    def __init__(self, root: str | os.PathLike[str], fmt: str = "webp", quality: int = 90) -> None:
        if fmt not in RENDER_FORMATS:
            raise ValueError(f"unknown render format {fmt!r}; use one of {RENDER_FORMATS}")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fmt = fmt
        self.quality = quality

    def relpath(self, key: str) -> str:
        """Path of a render relative to the cache root (what the store keeps as its URI)."""
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"not a render key: {key!r}")
        return f"{key[:2]}/{key}.{self.fmt}"

    def path(self, key: str) -> Path:
        """Absolute path of a render; refuses anything that would leave the root."""
        return resolve_under(self.root, self.relpath(key))

    def exists(self, key: str) -> bool:
        """Whether the finished file for ``key`` is on disk."""
        return self.path(key).is_file()

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys (deduplicated, in order) whose finished file is not on disk.

        The file, not the store row, is the truth: files only appear by an
        atomic rename, so one that exists is complete, and a crash between the
        rename and the index row costs a row upsert, never a second render.
        """
        out: list[str] = []
        seen: set[str] = set()
        for key in keys:
            if key not in seen:
                seen.add(key)
                if not self.exists(key):
                    out.append(key)
        return out

    def write(self, key: str, rgb: np.ndarray) -> Path:
        """Encode and write one render atomically (temp name in the same folder, then rename)."""
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = encode_image(rgb, self.fmt, quality=self.quality)
        tmp = dest.with_name(f"{PARTIAL_MARK}{os.getpid()}-{dest.name}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        return dest

    def sweep_partials(self) -> int:
        """Remove temporary files left by a killed writer; returns how many."""
        n = 0
        for tmp in self.root.glob(f"*/{PARTIAL_MARK}*"):
            tmp.unlink(missing_ok=True)
            n += 1
        return n

    def delete(self, keys: Iterable[str]) -> int:
        """Delete the files of ``keys`` (gc); returns how many existed."""
        return self.delete_uris(self.relpath(key) for key in keys)

    def delete_uris(self, uris: Iterable[str]) -> int:
        """Delete renders by the URI the store recorded (gc across format changes).

        A URI that would resolve outside the root (a tampered index row) is
        refused by :func:`data.paths.resolve_under` rather than followed.
        """
        n = 0
        for uri in uris:
            p = resolve_under(self.root, uri)
            if p.is_file():
                p.unlink()
                n += 1
        return n

    def files(self) -> list[Path]:
        """Every finished render file under the root."""
        return sorted(p for p in self.root.glob(f"*/*.{self.fmt}") if p.is_file())

"""Content-addressed cache of rendered product images.

A render is fully determined by the product image's bytes, the condition code
it was rendered with, the model version and the render parameters, so its
file name is the hash of those four.  An unchanged segment therefore costs
nothing the next night, and two runs that need the same render share one file.

Files are written to a temporary name in the destination folder and renamed,
so a reader (or a crash) never sees a partial file; leftovers of a killed
writer are swept by :meth:`RenderCache.sweep_partials` before a render stage.
Temp names carry the writer's host and pid, so the sweep of one nightly never
deletes a file another live writer is still writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import time
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


#: A temp file older than this is nobody's (see :meth:`RenderCache.sweep_partials`).
PARTIAL_MAX_AGE_S = 3600.0
_HOST = socket.gethostname().replace("-", "_")[:32] or "host"


def partial_name(final_name: str) -> str:
    """``.partial-<host>-<pid>-<random>-<final name>``: whose temp file it is, for the sweeper."""
    return f"{PARTIAL_MARK}{_HOST}-{os.getpid()}-{secrets.token_hex(4)}-{final_name}"


def partial_owner(name: str) -> tuple[str, int] | None:
    """``(host, pid)`` of a temp file named by :func:`partial_name`, else None."""
    if not name.startswith(PARTIAL_MARK):
        return None
    parts = name[len(PARTIAL_MARK):].split("-", 3)
    if len(parts) < 4 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def partial_final(name: str) -> str:
    """The final file name a temp file stands for (also for the older ``.partial-<pid>-`` form)."""
    rest = name[len(PARTIAL_MARK):]
    if partial_owner(name) is not None:
        return rest.split("-", 3)[3]
    return rest.partition("-")[2]


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        tmp = dest.with_name(partial_name(dest.name))
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def sweep_partials(self, max_age_s: float = PARTIAL_MAX_AGE_S) -> int:
        """Remove temporary files that no live writer owns; returns how many.

        A temp file is named by its writer's host and pid (:func:`partial_name`).
        It is removed when that writer is gone (same host, no such process) or
        when it is older than ``max_age_s`` (a pid reused by an unrelated
        process, or a writer on another host sharing the folder: one render is
        written in milliseconds, so an hour-old temp file is nobody's).  Another
        nightly's in-flight write is never touched.
        """
        n = 0
        now = time.time()
        for tmp in self.root.glob(f"*/{PARTIAL_MARK}*"):
            owner = partial_owner(tmp.name)
            try:
                age = now - tmp.stat().st_mtime
            except FileNotFoundError:
                continue  # renamed into place (or swept) meanwhile
            if owner is not None and owner[0] == _HOST and _alive(owner[1]) and age < max_age_s:
                continue
            if owner is not None and owner[0] != _HOST and age < max_age_s:
                continue
            if owner is None and age < max_age_s:
                continue  # not named by us (an older version's writer): only age decides
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

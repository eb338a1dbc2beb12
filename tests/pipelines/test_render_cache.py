"""The render cache: content-addressed keys, atomic files, partial sweeping, hostile keys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.cache import PARTIAL_MARK, RenderCache, condition_hash, partial_name, render_key

CODE = np.linspace(-1, 1, 100).astype(np.float32)


def test_key_depends_on_every_input() -> None:
    base = render_key("abc", CODE, "v1", {"mode": "background"})
    assert render_key("abc", CODE, "v1", {"mode": "background"}) == base
    assert render_key("abd", CODE, "v1", {"mode": "background"}) != base
    assert render_key("abc", CODE * 1.01, "v1", {"mode": "background"}) != base
    assert render_key("abc", CODE, "v2", {"mode": "background"}) != base
    assert render_key("abc", CODE, "v1", {"mode": "full"}) != base
    # Float noise far below the rounding step maps to the same file.
    assert render_key("abc", CODE + 1e-8, "v1", {"mode": "background"}) == base
    assert condition_hash(CODE + 1e-8) == condition_hash(CODE)


def test_write_is_atomic_and_missing_tracks_files(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "png")
    keys = [render_key(str(i), CODE, "v", {}) for i in range(3)]
    assert cache.missing(keys + keys[:1]) == keys  # deduplicated, in order
    rgb = np.full((20, 30, 3), 120, np.uint8)
    path = cache.write(keys[0], rgb)
    assert path == tmp_path / keys[0][:2] / f"{keys[0]}.png"
    assert np.array_equal(np.asarray(Image.open(path)), rgb)
    assert cache.missing(keys) == keys[1:]
    assert not list(tmp_path.rglob(f"{PARTIAL_MARK}*"))


def test_sweep_partials_removes_only_temp_files(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "webp")
    key = render_key("x", CODE, "v", {})
    cache.write(key, np.zeros((8, 8, 3), np.uint8))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / key[:2]
    stale = folder / partial_name("other.webp").replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    stale.write_bytes(b"half a file")
    in_flight = folder / partial_name("mine.webp")  # this (live) process is writing it
    in_flight.write_bytes(b"half a file")
    old_style = folder / f"{PARTIAL_MARK}{os.getpid()}-legacy.webp"  # only age decides
    old_style.write_bytes(b"x")
    assert cache.sweep_partials() == 1
    assert not stale.exists() and in_flight.exists() and old_style.exists()
    assert cache.exists(key)
    hour_ago = time.time() - 3700
    os.utime(old_style, (hour_ago, hour_ago))
    assert cache.sweep_partials() == 1 and not old_style.exists() and in_flight.exists()


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABCDEF0123", "0123", "/abs/path/key"])
def test_hostile_keys_are_refused(tmp_path: Path, key: str) -> None:
    cache = RenderCache(tmp_path, "png")
    with pytest.raises(ValueError):
        cache.path(key)


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gif"):
        RenderCache(tmp_path, "gif")


def test_symlinked_shard_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "renders", tmp_path / "outside"
    outside.mkdir()
    cache = RenderCache(root, "png")
    key = render_key("x", CODE, "v", {})
    (root / key[:2]).symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the root"):
        cache.write(key, np.zeros((8, 8, 3), np.uint8))
    assert not list(outside.iterdir())
    with pytest.raises(ValueError, match="outside the root"):
        cache.delete_uris([f"{key[:2]}/{key}.png"])
    with pytest.raises(ValueError, match=r"'\.\.'"):
        cache.delete_uris(["../outside/x.png"])


def test_written_files_honour_the_umask(tmp_path: Path) -> None:
    cache = RenderCache(tmp_path, "png")
    key = render_key("m", CODE, "v", {})
    old = os.umask(0o027)
    try:
        path = cache.write(key, np.zeros((8, 8, 3), np.uint8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640

"""Safe path resolution (data.paths)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from data.paths import UnsafePathError, resolve_under


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "root"
    (base / "images").mkdir(parents=True)
    (base / "images" / "a.jpg").write_bytes(b"x")
    (tmp_path / "secret.txt").write_text("secret")
    return base


def test_relative_paths_resolve_inside_the_root(root: Path) -> None:
    assert resolve_under(root, "images/a.jpg") == (root / "images" / "a.jpg").resolve()
    # Targets that do not exist yet (render outputs) are fine.
    assert resolve_under(root, "renders/ab/abc.webp") == (root / "renders/ab/abc.webp").resolve()
    assert resolve_under(str(root), Path("images") / "a.jpg").is_file()


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("/etc/passwd", "absolute"),
        ("../secret.txt", r"'\.\.'"),
        ("images/../../secret.txt", r"'\.\.'"),
        ("images/..", r"'\.\.'"),
        ("C:\\Windows\\win.ini", "absolute"),
        ("\\\\server\\share\\x", "absolute"),
        ("..\\secret.txt", r"'\.\.'"),
        ("", "empty"),
        ("images/a\x00.jpg", "NUL"),
    ],
)
def test_hostile_uris_are_refused_naming_the_uri(root: Path, uri: str, why: str) -> None:
    with pytest.raises(UnsafePathError, match=why) as info:
        resolve_under(root, uri)
    assert isinstance(info.value, ValueError)
    assert info.value.uri == uri


def test_symlink_escaping_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    os.symlink(tmp_path / "secret.txt", root / "images" / "link.jpg")
    os.symlink(tmp_path, root / "outside")
    with pytest.raises(UnsafePathError, match="link.jpg.*outside the root"):
        resolve_under(root, "images/link.jpg")
    with pytest.raises(UnsafePathError, match="outside the root"):
        resolve_under(root, "outside/secret.txt")


def test_symlink_staying_inside_the_root_is_allowed(root: Path) -> None:
    os.symlink(root / "images" / "a.jpg", root / "alias.jpg")
    assert resolve_under(root, "alias.jpg") == (root / "images" / "a.jpg").resolve()

"""Resolve relative URIs from catalogs and configs under a trusted root, safely.

Catalog rows (``image_uri``), style libraries and render indices carry paths
written by other systems.  A hostile or careless value such as
``../../etc/passwd``, ``/root/.ssh/id_rsa`` or a symlink planted inside the
image folder must never make stylerec read or overwrite a file outside the
folder it was told to use.  Every file path that comes from data goes through
:func:`resolve_under`.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


class UnsafePathError(ValueError):
    """A data-supplied path would leave its root (absolute, ``..``, or a symlink escape).

    A :class:`ValueError` so that the CLI reports it as a user error naming the uri.
    """

    def __init__(self, uri: object, root: Path, why: str) -> None:
        self.uri = uri
        self.root = root
        super().__init__(f"unsafe path {str(uri)!r} under {str(root)!r}: {why}")


def resolve_under(root: str | os.PathLike[str], uri: str | os.PathLike[str]) -> Path:
    """Return the absolute path of ``uri`` inside ``root``, refusing any way out.

    Refused (``UnsafePathError``): an empty uri, an absolute path (POSIX or a
    Windows drive/UNC path, since catalogs travel between systems), any ``..``
    component, a NUL byte, and a path that after resolving symlinks lies outside
    the resolved ``root``.  The target need not exist (render outputs are
    resolved before they are written); symlinks along the existing part of the
    path are followed and checked.
    """
    root_path = Path(root)
    text = os.fspath(uri)
    if not isinstance(text, str):
        raise UnsafePathError(uri, root_path, "not a text path")
    if text == "" or text.strip() == "":
        raise UnsafePathError(uri, root_path, "empty path")
    if "\x00" in text:
        raise UnsafePathError(uri, root_path, "NUL byte in path")
    posix, windows = PurePosixPath(text), PureWindowsPath(text)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or text.startswith("\\"):
        raise UnsafePathError(uri, root_path, "absolute paths are not allowed")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafePathError(uri, root_path, "'..' components are not allowed")
    base = root_path.resolve()
    target = (base / posix).resolve()  # follows symlinks on the existing part
    if not target.is_relative_to(base):
        raise UnsafePathError(uri, root_path, f"resolves to {str(target)!r}, outside the root")
    return target

"""Where the benchmarks find the real reference data (``../shared/data``).

One definition for every benchmark script, matching ``tests/conftest.py``:
``$STYLEREC_SHARED_DATA`` when set, else ``shared/data`` beside the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_root", "require_photos"]


def shared_data_root() -> Path:
    """The reference data folder; it may not exist (callers decide whether that is fatal)."""
    env = os.environ.get("STYLEREC_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_photos() -> Path:
    """The reference data folder, or exit with a message when its H&M photos are missing."""
    path = shared_data_root()
    if not (path / "hm" / "images").is_dir():
        raise SystemExit(f"needs the real photos under {path}/hm/images (set STYLEREC_SHARED_DATA)")
    return path

"""Deprecated: the run's file names and readers moved to :mod:`recsys.run_bundle`.

``reuse_previous`` moved to :mod:`pipelines.stages.common`.  Importing a name
from here still works for one release and warns.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

_NAMES = ("CODES", "CONDITIONS", "EVENTS", "ITEM_INDEX", "ITEM_MAP", "ITEMS", "ITEMS_RAW",
          "MODEL", "SEGMENTATION", "STYLE_EMBEDDINGS", "STYLE_INDEX", "STYLES", "STYLES_RAW",
          "USER_MAP", "WHITENING")
_MOVED: dict[str, tuple[str, str]] = {
    **{n: ("recsys.run_bundle", n) for n in _NAMES},
    "STYLE_SPACE": ("recsys.run_bundle", "LEGACY_STYLE_SPACE"),
    "reuse_previous": ("pipelines.stages.common", "reuse_previous"),
}


def load_codes(run_dir: Path) -> dict[str, np.ndarray]:
    """Deprecated: ``RunBundle.open(run_dir).read_codes()``."""
    from recsys.run_bundle import RunBundle

    warnings.warn("pipelines.stages.artifacts.load_codes is deprecated; use "
                  "recsys.run_bundle.RunBundle.read_codes", DeprecationWarning, stacklevel=2)
    c = RunBundle.open(run_dir).read_codes()
    return {"item_ids": np.asarray(c.item_ids, dtype=str), "item_codes": c.item_codes,
            "style_ids": np.asarray(c.style_ids, dtype=str), "style_codes": c.style_codes}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _MOVED[name]
    warnings.warn(f"pipelines.stages.artifacts.{name} moved to {module}.{attr}",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr)

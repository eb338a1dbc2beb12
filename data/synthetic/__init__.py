"""Deprecated: the demo world moved to the top-level package :mod:`demo` (removed after one release).

``import data.synthetic`` and ``from data.synthetic.world import WorldConfig``
keep working: this package warns once and registers each ``demo`` module under
its old name, so ``data.synthetic.world`` *is* ``demo.world`` (patching one
patches the other).  It is the one place where ``data`` imports a package
above it, and the import-graph test names it as the exception until it goes.
"""

from __future__ import annotations

import sys
import warnings

import demo
from demo import *  # noqa: F403 - the old package's names, for one release
from demo import images, logs, materials, over_catalog, shoppers, world

warnings.warn(
    "data.synthetic moved to demo (the demo world is no part of the data layer); "
    "data.synthetic will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)

for _module in (images, logs, materials, over_catalog, shoppers, world):
    sys.modules[f"{__name__}.{_module.__name__.rpartition('.')[2]}"] = _module

__all__ = list(demo.__all__)

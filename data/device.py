"""Deprecated: device selection moved to :mod:`compute.device` (removed after one release).

``from data.device import torch_device`` keeps working and warns once per use.
"""

from __future__ import annotations

import warnings
from typing import Any

from compute import device as _device

#: Names that moved to :mod:`compute.device`; served from there with a warning.
_MOVED = ("faiss_gpu_available", "torch_device")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"data.device.{name} moved to compute.device.{name}; "
            "data.device will be removed in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_device, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

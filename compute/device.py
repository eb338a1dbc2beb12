"""Device selection in one place: CUDA when present, else CPU; faiss GPU when installed.

It lives in :mod:`compute`, the bottom layer every package may import, because
both ``stylizer`` (the renderer) and ``recsys`` (the preference model and FAISS
indices) need it and neither may import the other; it is no data concern.
torch and faiss are imported lazily so that importing this module (or a
ranking process that never computes on a GPU) never pays for importing torch.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)


def torch_device(prefer: str | None = None) -> torch.device:
    """The torch device to compute on.

    ``prefer`` (or ``$STYLEREC_DEVICE`` when ``prefer`` is None) may be ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"``.  Asking for CUDA on a machine without it falls
    back to CPU with a warning rather than failing: a nightly job configured for
    a GPU box should still finish on a CPU box, only slower.  ``None``/``"auto"``
    picks CUDA when available.
    """
    import torch

    choice = prefer if prefer is not None else os.environ.get("STYLEREC_DEVICE") or None
    if choice in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(choice)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("device %r requested but CUDA is not available; using CPU", choice)
        return torch.device("cpu")
    return device


def faiss_gpu_available() -> bool:
    """True when faiss was built with GPU support and sees at least one GPU.

    faiss-cpu has no ``get_num_gpus`` (or returns 0); any import or runtime
    failure means "no GPU index", never an error, so callers can simply branch.
    """
    try:
        import faiss

        get_num_gpus = getattr(faiss, "get_num_gpus", None)
        return bool(get_num_gpus is not None and get_num_gpus() > 0)
    except Exception:  # noqa: BLE001 - a broken faiss install means "no GPU", not a crash
        return False

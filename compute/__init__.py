"""The bottom layer: where computation runs (device selection), shared by every package.

``data``, ``stylizer`` and ``recsys`` may import it; it imports none of them.
"""

from compute.device import faiss_gpu_available, torch_device

__all__ = ["faiss_gpu_available", "torch_device"]

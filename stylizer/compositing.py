"""Compositing for product-preserving renders: backdrop fill, scene strength, shadow, tone.

Everything here works on the *scene* (what lies behind the product) or joins
the scene and the product; no function changes a product pixel, so the
product keeps its true colours whatever the scene does (``a = 1`` pixels are
the original, bit for bit).

* :func:`fill_region` removes the product from the photo (push-pull fill), so
  the generator never sees the product's colours or outline;
* :func:`finish_scene` mixes the stylized scene with that clean backdrop: a
  shop wants a hint of marble or a painting's palette behind a jacket, rarely a
  full-strength painting at every pixel;
* :func:`contact_shadow` grounds the product: a soft shadow derived from the
  mask (a tight contact shadow along its lower edge and a wide, faint drop
  shadow offset downwards) darkens the scene, never the product;
* :func:`harmonize_tone` moves the scene's lightness towards the original
  backdrop's (mean and spread in CIELAB L), so a dark painting does not put a
  studio-lit product in a night scene;
* :func:`composite_decontaminated` lays the product over the scene, un-mixing
  the old backdrop from the soft edge pixels, so no backdrop-coloured rim is left.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "composite_decontaminated",
    "composite_decontaminated_torch",
    "contact_shadow",
    "fill_region",
    "finish_scene",
    "finish_scene_torch",
    "harmonize_tone",
    "scene_content",
    "scene_grain",
]


def fill_region(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the pixels where ``known`` is False from the known ones (push-pull pyramid).

    Smooth, fast (a few pyramid levels; O(pixels)) and free of the streaks that
    ``cv2.inpaint`` draws across large holes; holes the size of a garment are
    filled with the surrounding backdrop's colours and gradient.
    """
    img = image.astype(np.float32)
    w = known.astype(np.float32)
    if w.min() >= 1.0:
        return img
    if w.max() <= 0.0:
        mean = img.reshape(-1, img.shape[-1]).mean(axis=0)
        return np.broadcast_to(mean, img.shape).astype(np.float32).copy()
    return _push_pull(img * w[..., None], w)


def _push_pull(premult: np.ndarray, weight: np.ndarray) -> np.ndarray:
    h, w = weight.shape
    colour = premult / np.maximum(weight, 1e-6)[..., None]
    if min(h, w) <= 2:
        total = weight.sum()
        mean = premult.reshape(-1, premult.shape[-1]).sum(axis=0) / max(total, 1e-6)
        return np.where(weight[..., None] > 1e-6, colour, mean).astype(np.float32)
    small_p = cv2.pyrDown(premult)
    small_w = cv2.pyrDown(weight)
    coarse = _push_pull(small_p, small_w)
    up = cv2.pyrUp(coarse, dstsize=(w, h))
    # Trust a level's own (partial) average in proportion to how much known data fed it.
    trust = np.clip(weight * 4.0, 0.0, 1.0)[..., None]
    return (trust * colour + (1.0 - trust) * up).astype(np.float32)


def scene_grain(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Multi-scale (1/f) grey noise with unit standard deviation, deterministic per seed.

    The generator normalises each feature map per image (instance norm), so on
    a perfectly flat backdrop (pure white studio paper, or a filled hole) it has
    nothing to amplify and paints a flat wash.  A faint grain of several scales
    gives it structure to turn into brush strokes, uniformly across catalogs
    whose backdrops happen to be clean or noisy.
    """
    h, w = shape
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), np.float32)
    for cell in (64, 32, 16, 8, 4, 2):
        gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        out += cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC) * (cell / 64.0) ** 0.5
    out -= out.mean()
    return out / max(float(out.std()), 1e-6)


def scene_content(backdrop: np.ndarray, grain: float) -> np.ndarray:
    """What the generator sees for the scene: the filled backdrop plus a faint grain.

    The backdrop is compressed a little towards mid-grey first so the grain is
    not clipped away on white paper.
    """
    base = backdrop.astype(np.float32)
    if grain > 0:
        base = 3.0 * grain + base * (1.0 - 6.0 * grain / 255.0)
        base = base + grain * scene_grain(base.shape[:2])[..., None]
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def composite_decontaminated(
    original: np.ndarray, backdrop: np.ndarray, scene: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """``a*F + (1-a)*S`` with ``F`` the edge colour freed of the old backdrop ``B``.

    From ``I = a*F + (1-a)*B`` it follows that ``a*F = I - (1-a)*B``, so the
    result is ``I - (1-a)*B + (1-a)*S``, computed without dividing by a small
    alpha.  Where ``a = 1`` the original pixel is returned exactly.
    """
    a = np.clip(mask.astype(np.float32), 0.0, 1.0)[..., None]
    orig = original.astype(np.float32)
    fg_part = np.clip(orig - (1.0 - a) * backdrop.astype(np.float32), 0.0, 255.0 * a)
    out = fg_part + (1.0 - a) * scene.astype(np.float32)
    out = np.where(a >= 1.0, orig, out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def composite_decontaminated_torch(
    original: object, backdrop: object, scene: object, mask: object
) -> object:
    """:func:`composite_decontaminated` on torch tensors (``HxWx3``, mask ``HxW``), any device.

    The same float32 arithmetic in the same order, so on CPU the result is
    identical to the numpy version; on CUDA a fused multiply-add may move a
    pixel by one level.  Lets a GPU renderer composite where the scene already is.
    """
    import torch

    a = mask.float().clamp(0.0, 1.0).unsqueeze(-1)  # type: ignore[attr-defined]
    orig = original.float()  # type: ignore[attr-defined]
    fg_part = torch.minimum(
        torch.clamp(orig - (1.0 - a) * backdrop.float(), min=0.0),  # type: ignore[attr-defined]
        255.0 * a,
    )
    out = fg_part + (1.0 - a) * scene.float()  # type: ignore[attr-defined]
    out = torch.where(a >= 1.0, orig, out)
    return torch.round(out).clamp_(0, 255).to(torch.uint8)




def contact_shadow(mask: np.ndarray, strength: float) -> np.ndarray:
    """Shadow opacity (float32 ``HxW``, at most ``strength``) cast by the product in ``mask``.

    Two layers, both sized by the product's own extent so a shoe and a dress
    look alike: a contact shadow (tight blur, hugging the outline, strongest
    under the product's lower half) and a drop shadow (the silhouette moved down
    by 2 % of its height and blurred by 4 %), as from a soft key light above.
    Zero on the product itself: the caller darkens only the scene.
    """
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    if strength <= 0.0 or m.max() <= 0.0:
        return np.zeros_like(m)
    h, w = m.shape
    ys = np.flatnonzero(m.max(axis=1) > 0.5)
    extent = float(ys[-1] - ys[0] + 1) if ys.size else float(h)
    contact = cv2.GaussianBlur(m, (0, 0), max(1.0, 0.006 * extent))
    # Weight the contact shadow towards the bottom of the product (where it meets the floor).
    rows = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    lo = ys[0] / max(h - 1, 1) if ys.size else 0.0
    ramp = np.clip((rows - lo) / max(extent / max(h - 1, 1), 1e-6), 0.0, 1.0) ** 2
    shift = int(round(0.02 * extent))
    moved = np.zeros_like(m)
    moved[shift:] = m[: h - shift] if shift else m
    drop = cv2.GaussianBlur(moved, (0, 0), max(1.5, 0.04 * extent))
    shade = (0.55 * contact * (0.3 + 0.7 * ramp) + 0.45 * drop) * (1.0 - m)
    # ``strength`` is the darkest the shadow gets (right under the product's lower edge).
    peak = float(shade.max())
    if peak <= 1e-6:
        return np.zeros_like(m)
    return (strength * np.clip(shade / peak, 0.0, 1.0)).astype(np.float32)


def harmonize_tone(
    scene: np.ndarray, reference: np.ndarray, amount: float, where: np.ndarray | None = None
) -> np.ndarray:
    """Move the scene's lightness (mean and spread of CIELAB L) ``amount`` of the way to ``reference``.

    ``reference`` is the original photo's backdrop (the filled backdrop): the
    product was lit for it, so a scene of similar key sits with the product.
    Statistics are taken over ``where`` (default: everywhere).  Only L moves;
    the scene keeps the style's colours.
    """
    if amount <= 0.0:
        return scene
    sel = np.ones(scene.shape[:2], bool) if where is None else where
    if not sel.any():
        return scene
    lab = cv2.cvtColor(scene.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    ref = cv2.cvtColor(reference.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 0][sel]
    cur = lab[..., 0][sel]
    mu_s, sd_s = float(cur.mean()), max(float(cur.std()), 1e-3)
    mu_r, sd_r = float(ref.mean()), float(ref.std())
    target_sd = sd_s + amount * (max(sd_r, 0.25 * sd_s) - sd_s)
    target_mu = mu_s + amount * (mu_r - mu_s)
    lab[..., 0] = np.clip((lab[..., 0] - mu_s) * (target_sd / sd_s) + target_mu, 0.0, 100.0)
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def finish_scene(
    stylized: np.ndarray, backdrop: np.ndarray, strength: float, shadow: np.ndarray | None
) -> np.ndarray:
    """The scene behind the product: style blended at ``strength``, then shadowed; one rounding.

    ``(strength * S + (1 - strength) * B) * (1 - shadow)``; :func:`finish_scene_torch`
    does the same float32 arithmetic in the same order on any device.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"scene strength must be in [0, 1], got {strength}")
    out = np.float32(strength) * stylized.astype(np.float32) + np.float32(1.0 - strength) * (
        backdrop.astype(np.float32)
    )
    if shadow is not None:
        out = out * (np.float32(1.0) - shadow.astype(np.float32))[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def finish_scene_torch(
    stylized: object, backdrop: object, strength: float, shadow: object | None
) -> object:
    """:func:`finish_scene` on torch tensors (``HxWx3`` uint8 scene, float backdrop/shadow)."""
    import torch

    out = float(strength) * stylized.float() + float(1.0 - strength) * backdrop.float()  # type: ignore[attr-defined]
    if shadow is not None:
        out = out * (1.0 - shadow.float()).unsqueeze(-1)  # type: ignore[attr-defined]
    return torch.round(out).clamp_(0, 255).to(torch.uint8)

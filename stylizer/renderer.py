"""Product-preserving rendering: the scene takes the style, the product stays true.

Full-frame style transfer repaints the product too (a maroon jacket comes out
multicoloured, mean CIEDE2000 around 30), which is unusable in a shop.  The
:class:`Renderer` therefore offers three modes:

``full``
    the whole frame through the generator (what every open tool does; kept for
    comparison and for non-product imagery).
``background``
    the product's pixels are kept exactly; only the scene is stylized.  Two
    things make the seam clean.  (1) The product region (plus a margin) is
    *filled* with the surrounding backdrop colours before stylizing (a
    push-pull pyramid fill), so the generator never sees the product and
    cannot smear its colours or outline into the new background.  (2) The
    composite decontaminates the feathered edge: an edge pixel is
    ``I = a*F + (1-a)*B`` with ``B`` the old backdrop, so we recover ``F`` and
    lay it over the stylized scene ``S`` as ``a*F + (1-a)*S``.  Plain alpha
    blending would instead leave a thin ring of the old backdrop (the "halo").
    The scene is then finished (:mod:`stylizer.compositing`): blended with the
    clean backdrop at the scene strength (a calm scene, per style), darkened by
    the product's contact shadow, optionally toned towards the photo's light;
    none of it touches a product pixel.  The mask is the fused mask of
    :mod:`stylizer.mask_fusion`, cached by image content when ``mask_cache`` is set.
``harmonize``
    like ``background``, but the product also takes a light touch of the style's
    texture (its high-frequency lightness), capped so the product's mean
    CIEDE2000 stays within ``delta_e_budget``.

Rendering is batched: images of equal size go through the generator together,
on CUDA when present (``compute.device``), else on CPU.  On CUDA the ``background``
composite runs on the GPU as well (the scenes never leave it before that), and
the per-item work (mask, fill) is done once per distinct image in a call, so an
item rendered under K segment conditions costs one mask and K generator passes.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.color import deltaE_ciede2000, lab2rgb, rgb2lab
from tqdm.auto import tqdm

from stylizer.compositing import (
    composite_decontaminated,
    composite_decontaminated_torch,
    contact_shadow,
    fill_region,
    finish_scene,
    finish_scene_torch,
    harmonize_tone,
    scene_content,
    scene_grain,
)
from stylizer.image_io import ImageError, load_image, resize_max_side, save_image
from stylizer.mask_cache import MaskCache
from stylizer.masks import MASK_METHODS, binarize, product_mask
from stylizer.style_space import StyleSpace

__all__ = [
    "MODES",
    "Renderer",
    "Rendered",
    "RenderResult",
    "composite_decontaminated",
    "composite_decontaminated_torch",
    "fill_region",
    "scene_content",
    "scene_grain",
]

log = logging.getLogger(__name__)

MODES = ("full", "background", "harmonize")

#: ``runtime(content[B,3,H,W] float in [0,1], codes[B,100]) -> [B,3,H,W]`` (torch tensors).
Runtime = Callable[..., object]


@dataclass(frozen=True)
class Rendered:
    """One render with what produced it: ``scene`` is the product-free stylized scene.

    ``scene`` is the "clean render" the halo score compares against; ``mask``
    is the soft product mask used for the composite (None in ``full`` mode).
    """

    image: np.ndarray
    mask: np.ndarray | None
    scene: np.ndarray


@dataclass(frozen=True)
class RenderResult:
    """Outcome of rendering one file: ``out_path`` on success, ``error`` (a reason) otherwise."""

    path: Path
    out_path: Path | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was rendered and written."""
        return self.error is None


def _default_runtime(device: object) -> Runtime:
    """The fast generator runtime when available, else the plain PyTorch generator."""
    try:
        from stylizer.runtime import make_generator_runtime
    except ImportError:
        make_generator_runtime = None
    if make_generator_runtime is not None:
        return make_generator_runtime(device=device)
    import torch

    from stylizer.weights import load_generator

    gen = load_generator(device)

    def run(content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return gen(content, codes)

    return run


class Renderer:
    """Batched product-preserving renderer (see the module docstring for the modes).

    Parameters
    ----------
    mode: ``"full"``, ``"background"`` or ``"harmonize"``.
    strength: 0..1; interpolates each image's code between its own style code
        (from ``encoder``) and the target; 1 needs no encoder.
    max_side: renders are made at the input size, downscaled to at most this.
    device: torch device (``None``: CUDA when present, else CPU).
    batch_size: images of one size per generator call.
    runtime: ``runtime(content, codes) -> tensor``; default: :mod:`stylizer.runtime`
        if present, else the PyTorch generator.  Injectable for tests and Ray workers.
    delta_e_budget: mean CIEDE2000 the product may move in ``harmonize`` mode.
    encoder: object with ``encode(list[HxWx3 uint8]) -> (N, 100)``; default
        :class:`stylizer.StyleEncoder`, created only when ``strength < 1``.
    texture: weight of the style's lightness detail on the product (harmonize).
    scene_grain: std (in 8-bit levels) of the faint grain added to the filled
        backdrop so flat studio paper still takes the style's texture.
    scene_strength: 0..1, default blend of the stylized scene with the clean
        backdrop (1: full style); a call may pass one per image.
    shadow_strength: 0..1, opacity of the contact/drop shadow the product casts
        on the scene (``background``/``harmonize``; 0: none).
    tone: 0..1, how far the scene's lightness moves towards the original backdrop's.
    mask_method: ``auto``, ``fused`` or ``classical`` (see :func:`stylizer.masks.product_mask`).
    mask_cache: folder (or :class:`MaskCache`) of estimated masks keyed by image content.
    """

    def __init__(
        self,
        mode: str = "background",
        strength: float = 1.0,
        max_side: int = 512,
        device: str | None = None,
        batch_size: int = 8,
        runtime: Runtime | None = None,
        delta_e_budget: float = 5.0,
        encoder: object | None = None,
        texture: float = 0.6,
        scene_grain: float = 6.0,
        scene_strength: float = 1.0,
        shadow_strength: float = 0.3,
        tone: float = 0.0,
        mask_method: str = "auto",
        mask_cache: MaskCache | str | os.PathLike[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown render mode {mode!r}; use one of {', '.join(MODES)}")
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        if max_side < 16:
            raise ValueError(f"max_side must be >= 16, got {max_side}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if delta_e_budget <= 0:
            raise ValueError(f"delta_e_budget must be > 0, got {delta_e_budget}")
        for name, value in (
            ("scene_strength", scene_strength),
            ("shadow_strength", shadow_strength),
            ("tone", tone),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if mask_method not in MASK_METHODS:
            raise ValueError(f"unknown mask method {mask_method!r}; use one of {MASK_METHODS}")
        self.mode = mode
        self.strength = float(strength)
        self.max_side = int(max_side)
        self.device = device
        self.batch_size = int(batch_size)
        self.delta_e_budget = float(delta_e_budget)
        self.texture = float(texture)
        self.scene_grain = float(scene_grain)
        self.scene_strength = float(scene_strength)
        self.shadow_strength = float(shadow_strength)
        self.tone = float(tone)
        self.mask_method = mask_method
        self.mask_cache = (
            mask_cache
            if mask_cache is None or isinstance(mask_cache, MaskCache)
            else MaskCache(mask_cache)
        )
        self._runtime = runtime
        self._encoder = encoder

    # ------------------------------------------------------------------ lazy heavy parts
    @property
    def runtime(self) -> Runtime:
        """The generator call, built on first use (loading weights is not free)."""
        if self._runtime is None:
            from compute.device import torch_device

            self._runtime = _default_runtime(torch_device(self.device))
        return self._runtime

    @property
    def encoder(self) -> object:
        """Style encoder for the content's own code (only needed when strength < 1)."""
        if self._encoder is None:
            from stylizer.encoder import StyleEncoder

            self._encoder = StyleEncoder(device=self.device)
        return self._encoder

    # ------------------------------------------------------------------ public API
    def render(
        self,
        images: Sequence[np.ndarray],
        codes: np.ndarray,
        masks: Sequence[np.ndarray | None] | None = None,
        scene_strengths: Sequence[float] | float | None = None,
    ) -> list[np.ndarray]:
        """Render each image with its code (``(N, 100)``, or one ``(100,)`` code for all)."""
        return [
            r.image
            for r in self.render_detailed(images, codes, masks, scene_strengths=scene_strengths)
        ]

    def render_detailed(
        self,
        images: Sequence[np.ndarray],
        codes: np.ndarray,
        masks: Sequence[np.ndarray | None] | None = None,
        alphas: Sequence[np.ndarray | None] | None = None,
        scene_strengths: Sequence[float] | float | None = None,
    ) -> list[Rendered]:
        """Like :meth:`render`, also returning each mask and product-free stylized scene.

        ``masks`` are user masks (float [0, 1] or uint8), ``alphas`` cut-out alpha
        channels; either wins over the estimated mask for its image.
        ``scene_strengths``: one per image (or one for all) in [0, 1]; default
        ``self.scene_strength``.  ``Rendered.scene`` is the finished scene (style
        at that strength, shadow included): everything but the product.
        """
        n = len(images)
        if n == 0:
            return []
        strengths = self._strengths_for(scene_strengths, n)
        masks = list(masks) if masks is not None else [None] * n
        alphas = list(alphas) if alphas is not None else [None] * n
        if len(masks) != n or len(alphas) != n:
            raise ValueError(f"{n} images but {len(masks)} masks / {len(alphas)} alphas")
        # The nightly render stage passes one item's image (and mask) once per segment
        # condition: the same objects K times.  Resizing, the mask and the filled backdrop
        # do not depend on the condition, so each distinct input is prepared once.
        prepared: dict[tuple[int, int, int], tuple[np.ndarray, ...]] = {}
        imgs: list[np.ndarray] = []
        soft: list[np.ndarray | None] = [None] * n
        backdrops: list[np.ndarray | None] = [None] * n
        shadows: list[np.ndarray | None] = [None] * n
        contents: list[np.ndarray] = []
        for i, raw in enumerate(images):
            key = (id(raw), id(masks[i]), id(alphas[i]))
            if key not in prepared:
                prepared[key] = self._prepare(self._check_image(raw, i), masks[i], alphas[i])
            im, *rest = prepared[key]
            imgs.append(im)
            if self.mode == "full":
                contents.append(im)
            else:
                soft[i], backdrops[i], content, shadows[i] = rest
                contents.append(content)
        target = self._codes_for(codes, n)
        if self.strength < 1.0:
            own = np.asarray(self.encoder.encode(imgs), dtype=np.float32)  # type: ignore[attr-defined]
            target = StyleSpace.interpolate(own, target, self.strength)
        if self.mode == "background" and self.tone == 0.0 and self._device().type == "cuda":
            # GPU: composite where the scenes are; each distinct item is uploaded once.
            scene_t = self._stylize(contents, target, on_device=True)
            return self._composite_on_device(imgs, backdrops, soft, shadows, strengths, scene_t)  # type: ignore[arg-type]
        scenes = self._stylize(contents, target)
        if self.mode != "full":
            for i in range(n):
                st = scenes[i]
                if self.tone > 0.0:
                    st = harmonize_tone(st, backdrops[i], self.tone)  # type: ignore[arg-type]
                scenes[i] = finish_scene(st, backdrops[i], strengths[i], shadows[i])  # type: ignore[arg-type]

        products: list[np.ndarray | None] = [None] * n
        if self.mode == "harmonize":
            full = self._stylize(imgs, target)
            products = [
                self._harmonize_product(im, st, m)  # type: ignore[arg-type]
                for im, st, m in zip(imgs, full, soft, strict=True)
            ]

        out: list[Rendered] = []
        for i, im in enumerate(imgs):
            if self.mode == "full":
                out.append(Rendered(image=scenes[i], mask=None, scene=scenes[i]))
                continue
            base = products[i] if products[i] is not None else im
            img = composite_decontaminated(base, backdrops[i], scenes[i], soft[i])  # type: ignore[arg-type]
            out.append(Rendered(image=img, mask=soft[i], scene=scenes[i]))
        return out

    def render_paths(
        self,
        paths: Sequence[str | os.PathLike[str]],
        code: np.ndarray,
        out_dir: str | os.PathLike[str],
        fmt: str = "png",
        style_name: str | None = None,
        quality: int = 95,
        chunk: int = 32,
        names: Sequence[str] | None = None,
    ) -> list[RenderResult]:
        """Render files with one style code into ``out_dir``; bad files are reported, not fatal.

        Output names are ``<stem>.<fmt>`` or ``<stem>__<style_name>.<fmt>``; ``names``
        (one per path) replaces the stems, for inputs that share one (``a.jpg``, ``a.tif``).
        Files are processed in chunks so memory stays bounded for long lists.
        """
        out_root = Path(out_dir)
        out_root.mkdir(parents=True, exist_ok=True)
        fmt = fmt.lower().lstrip(".")
        results: list[RenderResult] = []
        path_list = [Path(p) for p in paths]
        stem_of = dict(zip(path_list, names, strict=True)) if names is not None else {}
        bar = tqdm(
            total=len(path_list),
            desc=f"render {self.mode}",
            unit="img",
            disable=not sys.stderr.isatty(),
        )
        for start in range(0, len(path_list), chunk):
            batch_paths = path_list[start : start + chunk]
            loaded = []
            for p in batch_paths:
                try:
                    loaded.append((p, load_image(p, max_side=self.max_side)))
                except (ImageError, FileNotFoundError) as exc:
                    log.warning("skipping %s", exc)
                    results.append(RenderResult(p, None, str(exc)))
            if loaded:
                try:
                    rendered = self.render_detailed(
                        [li.rgb for _, li in loaded],
                        code,
                        alphas=[li.alpha for _, li in loaded],
                    )
                except (ValueError, RuntimeError) as exc:
                    # One bad batch must not sink the rest: retry one by one.
                    log.warning("batch failed (%s); rendering one by one", exc)
                    rendered = []
                    for p, li in loaded:
                        try:
                            rendered.extend(self.render_detailed([li.rgb], code, alphas=[li.alpha]))
                        except (ValueError, RuntimeError) as exc1:
                            rendered.append(None)  # type: ignore[arg-type]
                            results.append(RenderResult(p, None, f"{p}: render failed: {exc1}"))
                for (p, _), r in zip(loaded, rendered, strict=True):
                    if r is None:
                        continue
                    stem = stem_of.get(p, p.stem)
                    name = f"{stem}__{style_name}" if style_name else stem
                    target = out_root / f"{name}.{fmt}"
                    try:
                        save_image(target, r.image, fmt=fmt, quality=quality)
                        results.append(RenderResult(p, target))
                    except OSError as exc:
                        results.append(RenderResult(p, None, f"{target}: cannot write: {exc}"))
            bar.update(len(batch_paths))
        bar.close()
        order = {p: i for i, p in enumerate(path_list)}
        results.sort(key=lambda r: order.get(r.path, 0))
        n_ok = sum(r.ok for r in results)
        log.info("rendered %d of %d images (%d failed)", n_ok, len(results), len(results) - n_ok)
        return results

    # ------------------------------------------------------------------ internals
    def _prepare(
        self, im: np.ndarray, mask: np.ndarray | None, alpha: np.ndarray | None
    ) -> tuple[np.ndarray, ...]:
        """``(image,)`` in full mode, else ``(image, soft mask, filled backdrop, scene
        content, shadow opacity or None)``."""
        if self.mode == "full":
            return (im,)
        m = self.mask_for(im, alpha=alpha, user_mask=mask)
        backdrop = fill_region(im, ~self._removal_region(m))
        shadow = contact_shadow(m, self.shadow_strength) if self.shadow_strength > 0 else None
        return im, m, backdrop, scene_content(backdrop, self.scene_grain), shadow

    def mask_for(
        self,
        image: np.ndarray,
        alpha: np.ndarray | None = None,
        user_mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """The product mask the renderer uses for ``image`` (at its size), cached by content.

        A supplied mask or alpha wins and is never cached; an estimated mask is
        looked up in (and stored to) ``mask_cache`` when one is configured.
        """
        if user_mask is not None or alpha is not None or self.mask_cache is None:
            return product_mask(image, alpha=alpha, user_mask=user_mask, method=self.mask_method)
        method = self.mask_method
        if method == "auto":
            from stylizer.saliency import available

            method = "fused" if available() else "classical"
        return self.mask_cache.get_or_compute(
            image, method, lambda: product_mask(image, method=method)
        )

    def _strengths_for(self, strengths: Sequence[float] | float | None, n: int) -> list[float]:
        if strengths is None:
            return [self.scene_strength] * n
        if np.isscalar(strengths):
            values = [float(strengths)] * n  # type: ignore[arg-type]
        else:
            values = [float(v) for v in strengths]  # type: ignore[union-attr]
        if len(values) != n:
            raise ValueError(f"{n} images but {len(values)} scene strengths")
        bad = [v for v in values if not 0.0 <= v <= 1.0]
        if bad:
            raise ValueError(f"scene strengths must be in [0, 1], got {bad[0]}")
        return values

    def _check_image(self, image: np.ndarray, index: int) -> np.ndarray:
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(f"image {index}: expected HxWx3 uint8, got {arr.dtype} {arr.shape}")
        if min(arr.shape[:2]) < 8:
            raise ValueError(f"image {index}: too small ({arr.shape[1]}x{arr.shape[0]})")
        return np.ascontiguousarray(resize_max_side(arr, self.max_side))

    @staticmethod
    def _codes_for(codes: np.ndarray, n: int) -> np.ndarray:
        c = np.asarray(codes, dtype=np.float32)
        if c.ndim == 1:
            c = np.broadcast_to(c, (n, c.shape[0]))
        if c.ndim != 2 or c.shape[0] != n:
            raise ValueError(f"need one code per image ({n}) or a single code, got {c.shape}")
        if not np.all(np.isfinite(c)):
            raise ValueError("style codes contain NaN or infinite values")
        return np.ascontiguousarray(c)

    @staticmethod
    def _removal_region(mask: np.ndarray) -> np.ndarray:
        """Product plus a margin: everything whose colours must not reach the generator.

        The margin covers the feathered seam, a pixel or two of mask error and
        the generator's habit of echoing strong edges a few pixels outward.
        """
        h, w = mask.shape
        r = max(2, round(0.012 * max(h, w)))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate((mask > 0.02).astype(np.uint8), k) > 0

    def _device(self) -> object:
        from compute.device import torch_device

        return torch_device(self.device)

    def _composite_on_device(
        self,
        imgs: list[np.ndarray],
        backdrops: list[np.ndarray],
        soft: list[np.ndarray],
        shadows: list[np.ndarray | None],
        strengths: list[float],
        scenes: list[object],
    ) -> list[Rendered]:
        """Scene finish and decontaminated composite on the scenes' device; returns host arrays."""
        import torch

        device = self._device()
        uploaded: dict[tuple[int, int, int], tuple[object, ...]] = {}
        out: list[Rendered] = []
        for i, (im, backdrop, mask, stylized) in enumerate(
            zip(imgs, backdrops, soft, scenes, strict=True)
        ):
            key = (id(im), id(backdrop), id(mask))
            if key not in uploaded:
                shadow = shadows[i]
                uploaded[key] = (
                    torch.from_numpy(im).to(device, non_blocking=True),
                    torch.from_numpy(np.ascontiguousarray(backdrop)).to(device, non_blocking=True),
                    torch.from_numpy(np.ascontiguousarray(mask)).to(device, non_blocking=True),
                    None if shadow is None else torch.from_numpy(shadow).to(device),
                )
            orig_t, back_t, mask_t, shadow_t = uploaded[key]
            scene = finish_scene_torch(stylized, back_t, strengths[i], shadow_t)
            img = composite_decontaminated_torch(orig_t, back_t, scene, mask_t)
            out.append(
                Rendered(
                    image=img.cpu().numpy(),  # type: ignore[attr-defined]
                    mask=mask,
                    scene=scene.cpu().numpy(),  # type: ignore[attr-defined]
                )
            )
        return out

    def _stylize(
        self, images: list[np.ndarray], codes: np.ndarray, on_device: bool = False
    ) -> list[np.ndarray]:
        """Run the generator, batching images of equal size together.

        Returns host uint8 ``HxWx3`` arrays, or (``on_device``) uint8 tensors left on
        the generator's device.
        """
        import torch

        device = self._device()
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, im in enumerate(images):
            groups[im.shape].append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        runtime = self.runtime
        for idx in groups.values():
            for s in range(0, len(idx), self.batch_size):
                part = idx[s : s + self.batch_size]
                x = torch.from_numpy(np.stack([images[i] for i in part])).permute(0, 3, 1, 2)
                x = x.to(device=device, dtype=torch.float32).div_(255.0)
                c = torch.from_numpy(codes[part]).to(device=device, dtype=torch.float32)
                y = runtime(x, c)
                y = y.detach().float().clamp_(0.0, 1.0).mul_(255.0).round_()  # type: ignore[attr-defined]
                arr = y.to(torch.uint8).permute(0, 2, 3, 1)
                if not on_device:
                    arr = arr.cpu().numpy()
                for j, i in enumerate(part):
                    if tuple(arr[j].shape) != images[i].shape:
                        raise RuntimeError(
                            f"generator returned {tuple(arr[j].shape)} for input {images[i].shape}"
                        )
                    out[i] = arr[j]
        return out  # type: ignore[return-value]

    def _harmonize_product(
        self, original: np.ndarray, stylized: np.ndarray, mask: np.ndarray
    ) -> np.ndarray:
        """Original product plus the style's fine lightness texture, held within the ΔE budget.

        Only high-frequency lightness is borrowed (the style's brush or grain),
        never its palette, and the amount is scaled down until the product's
        mean CIEDE2000 inside the mask is at most ``delta_e_budget``.
        """
        lab_o = rgb2lab(original)
        lab_s = rgb2lab(stylized)
        detail = lab_s[..., 0] - cv2.GaussianBlur(lab_s[..., 0], (0, 0), 2.0)
        inside = binarize(mask, erode_px=1)
        if not inside.any():
            return original
        weight = self.texture
        for _ in range(6):
            lab = lab_o.copy()
            lab[..., 0] = np.clip(lab_o[..., 0] + weight * detail, 0.0, 100.0)
            rgb = np.clip(np.rint(lab2rgb(lab) * 255.0), 0, 255).astype(np.uint8)
            de = float(deltaE_ciede2000(lab_o[inside], rgb2lab(rgb)[inside]).mean())
            if de <= self.delta_e_budget:
                return rgb
            weight *= 0.9 * self.delta_e_budget / de
        return original

"""Held-out comparison of a student with the teacher: per-pair and summary metrics.

Every held-out photo (long side ``size``) is rendered in every held-out style by
both generators' production runtimes (full frame, generator alone), and the pair
is scored with :mod:`stylizer.quality` (PSNR, SSIM), the cosine of the style
predictor's codes of the two renders, and over the whole set the style-trunk
Fréchet distance with a bootstrap interval.

Why two cosines: raw style codes are all close to each other (two different
paintings have cosine > 0.9), so the raw cosine alone flatters.  The centred
cosine subtracts the mean code of all teacher renders first, and the
``baseline`` figures score the teacher against *itself in another style*: what
a student that got the style wrong would score (for the Fréchet distance: the
unstyled photos against the teacher's renders).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stylizer import quality

Runtime = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class HeldOutResult:
    """Per-pair rows, the summary, and the renders (photo-major) for a contact sheet."""

    rows: list[dict[str, object]]
    summary: dict[str, float]
    photos: list[np.ndarray] = field(repr=False)
    teacher: list[list[np.ndarray]] = field(repr=False)
    student: list[list[np.ndarray]] = field(repr=False)


def _render(runtime: Runtime, image: np.ndarray, codes: np.ndarray) -> list[np.ndarray]:
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255)
    outs = []
    for code in codes:
        y = runtime(x, torch.from_numpy(np.asarray(code, np.float32))[None])
        outs.append((y[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8))
    return outs


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def evaluate_heldout(
    teacher: Runtime,
    student: Runtime,
    photos: Sequence[Path],
    style_codes: np.ndarray,
    style_names: Sequence[str],
    encoder: object,
    predictor: torch.nn.Module,
    size: int = 384,
    n_boot: int = 200,
) -> HeldOutResult:
    """Score ``student`` against ``teacher`` on every (photo, style) pair; see the module docstring."""
    from stylizer.image_io import load_image

    images = [load_image(p, max_side=size).rgb for p in photos]
    t_renders = [_render(teacher, img, style_codes) for img in images]
    s_renders = [_render(student, img, style_codes) for img in images]
    flat_t = [r for row in t_renders for r in row]
    flat_s = [r for row in s_renders for r in row]
    codes_t = np.asarray(encoder.encode(flat_t), np.float64)  # type: ignore[attr-defined]
    codes_s = np.asarray(encoder.encode(flat_s), np.float64)  # type: ignore[attr-defined]
    cos = _cos(codes_t, codes_s)
    centre = codes_t.mean(0)
    cos_c = _cos(codes_t - centre, codes_s - centre)
    k = len(style_codes)
    # baseline: the teacher's render of the same photo in the next style
    other = np.asarray([i - (i % k) + ((i % k) + 1) % k for i in range(len(flat_t))])
    base_cos = _cos(codes_t, codes_t[other]) if k > 1 else np.full(len(flat_t), np.nan)
    base_cos_c = _cos(codes_t - centre, codes_t[other] - centre) if k > 1 else base_cos
    base_ssim = [quality.ssim(flat_t[i], flat_t[j]) for i, j in enumerate(other)] if k > 1 else [np.nan]
    rows: list[dict[str, object]] = []
    ssims, psnrs = [], []
    for i, (a, b) in enumerate(zip(flat_t, flat_s, strict=True)):
        s, p = quality.ssim(a, b), quality.psnr(a, b)
        ssims.append(s)
        psnrs.append(p)
        rows.append({"photo": Path(photos[i // k]).name, "style": style_names[i % k],
                     "ssim": s, "psnr": p, "code_cosine": float(cos[i]),
                     "code_cosine_centred": float(cos_c[i])})  # fmt: skip
    ft = quality.trunk_features(flat_t, predictor)
    fs = quality.trunk_features(flat_s, predictor)
    fd, lo, hi = quality.frechet_interval(ft, fs, n_boot=n_boot)
    # baseline: the unstyled photos (each repeated once per style) against the teacher
    fp = np.repeat(quality.trunk_features(images, predictor), k, axis=0)
    fd_base = quality.frechet_distance(ft, fp)
    summary = {
        "pairs": float(len(rows)),
        "ssim_mean": float(np.mean(ssims)), "ssim_min": float(np.min(ssims)),
        "psnr_mean": float(np.mean(psnrs)), "psnr_min": float(np.min(psnrs)),
        "code_cosine_mean": float(np.mean(cos)), "code_cosine_min": float(np.min(cos)),
        "code_cosine_centred_mean": float(np.mean(cos_c)),
        "frechet_trunk": fd, "frechet_trunk_lo": lo, "frechet_trunk_hi": hi,
        "baseline_other_style_ssim_mean": float(np.mean(base_ssim)),
        "baseline_other_style_code_cosine_mean": float(np.mean(base_cos)),
        "baseline_other_style_code_cosine_centred_mean": float(np.mean(base_cos_c)),
        "baseline_unstyled_photo_frechet_trunk": fd_base,
    }  # fmt: skip
    return HeldOutResult(rows, summary, images, t_renders, s_renders)

"""Contact sheets: a labelled grid of thumbnails in one PNG.

People judge renders by eye (is the product intact, is there a halo, did the
style arrive?), and the nightly report, the ``stylerec sheet`` command and the
docs all need the same picture: products down, styles (or segments) across.
One small module draws it with Pillow so every caller gets the same layout.

Cells are fitted into ``thumb`` x ``thumb`` boxes keeping their aspect ratio
(never upscaled past the box), so portrait product shots and landscape
artworks sit side by side without distortion.  A missing cell (``None``, or a
file that cannot be read) is drawn as a grey placeholder instead of failing
the sheet: a report must still appear when one render is missing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stylizer.image_io import ImageError, load_image, save_image

__all__ = ["Cell", "contact_sheet", "PLACEHOLDER_GREY"]

log = logging.getLogger(__name__)

#: A cell: an RGB(A)/grey uint8 array, an image file path, or None (missing).
Cell = np.ndarray | str | os.PathLike[str] | None

#: Fill of a missing cell; mid-light grey so it reads as "nothing here", not as an image.
PLACEHOLDER_GREY = 200
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_PAD = 4


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled default font at ``size`` px (bitmap fallback on old Pillow)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def _as_rgb(cell: Cell, thumb: int) -> np.ndarray | None:
    """The cell as an HxWx3 uint8 array at most ``thumb`` a side, or None if missing/unreadable."""
    if cell is None:
        return None
    if isinstance(cell, (str, os.PathLike)):
        try:
            return load_image(cell, max_side=thumb).rgb
        except (ImageError, FileNotFoundError) as exc:
            log.warning("contact sheet: drawing a placeholder for %s", exc)
            return None
    arr = np.asarray(cell)
    if arr.dtype != np.uint8:
        raise ValueError(f"contact sheet cells must be uint8 arrays, got {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"contact sheet cells must be HxW, HxWx3 or HxWx4, got {arr.shape}")
    return np.ascontiguousarray(arr[:, :, :3])


def _fit(rgb: np.ndarray, thumb: int) -> Image.Image:
    """Scale ``rgb`` to fit a ``thumb`` box (aspect kept, long side = ``thumb``)."""
    im = Image.fromarray(rgb, "RGB")
    h, w = rgb.shape[:2]
    scale = thumb / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
        im = im.resize(size, resample)
    return im


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> str:
    """``text`` shortened with an ellipsis until it is at most ``width`` px wide."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…" if text else ""


def _check_labels(labels: Sequence[str] | None, n: int, what: str) -> list[str] | None:
    if labels is None:
        return None
    out = [str(s) for s in labels]
    if len(out) != n:
        raise ValueError(f"{len(out)} {what} labels for {n} {what}s")
    return out


def contact_sheet(
    rows: Sequence[Sequence[Cell]],
    out_path: str | os.PathLike[str],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    header: str | Sequence[Cell] | None = None,
    thumb: int = 160,
    title: str | None = None,
    quality: int = 85,
) -> Path:
    """Draw ``rows`` (lists of cells) as a labelled grid and write it atomically.

    PNG, or WebP/JPEG (at ``quality``) when ``out_path`` ends in ``.webp``/``.jpg``.

    ``header`` is either a title line (``str``) or a strip of images drawn above
    the grid, one per grid column from the left (``None`` slots stay empty), e.g.
    the style images of a segment's blend.  ``title`` adds a title line when
    ``header`` is a strip.  Rows may have different lengths; short rows end
    early.  Returns ``out_path``.
    """
    if thumb < 16:
        raise ValueError(f"thumb must be >= 16 px, got {thumb}")
    grid = [[_as_rgb(c, thumb) for c in row] for row in rows]
    n_cols = max((len(r) for r in grid), default=0)
    if not grid or n_cols == 0:
        raise ValueError("a contact sheet needs at least one row with one cell")
    r_labels = _check_labels(row_labels, len(grid), "row")
    c_labels = _check_labels(col_labels, n_cols, "column")
    strip = None
    if isinstance(header, str):
        title = title or header
    elif header is not None:
        strip = [_as_rgb(c, thumb) for c in header]
    n_cols = max(n_cols, len(strip) if strip else 0)

    font_size = max(10, min(16, thumb // 9))
    font = _font(font_size)
    title_font = _font(font_size + 4)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = font_size + 2 * _PAD
    label_w = 0
    if r_labels:
        widest = max(scratch.textlength(s, font=font) for s in r_labels)
        label_w = int(min(widest, 2.5 * thumb)) + 2 * _PAD
    cell = thumb + _PAD
    top = _PAD
    title_y = top
    if title:
        top += font_size + 4 + 2 * _PAD
    strip_y = top
    if strip:
        top += cell
    labels_y = top
    if c_labels:
        top += line
    width = label_w + _PAD + n_cols * cell
    height = top + len(grid) * cell + _PAD

    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    x0 = label_w + _PAD

    def paste(rgb: np.ndarray | None, x: int, y: int, placeholder: bool) -> None:
        if rgb is None:
            if placeholder:
                grey = (PLACEHOLDER_GREY,) * 3
                draw.rectangle([x, y, x + thumb - 1, y + thumb - 1], fill=grey)
            return
        im = _fit(rgb, thumb)
        sheet.paste(im, (x + (thumb - im.width) // 2, y + (thumb - im.height) // 2))

    if title:
        draw.text(
            (_PAD, title_y),
            _fit_text(draw, title, title_font, width - 2 * _PAD),
            fill=_TEXT,
            font=title_font,
        )
    if strip:
        for j, rgb in enumerate(strip):
            paste(rgb, x0 + j * cell, strip_y, placeholder=False)
    if c_labels:
        for j, text in enumerate(c_labels):
            text = _fit_text(draw, text, font, thumb)
            dx = (thumb - int(draw.textlength(text, font=font))) // 2
            draw.text((x0 + j * cell + dx, labels_y + _PAD), text, fill=_TEXT, font=font)
    for i, row in enumerate(grid):
        y = top + i * cell
        if r_labels:
            text = _fit_text(draw, r_labels[i], font, label_w - 2 * _PAD)
            draw.text((_PAD, y + (thumb - font_size) // 2), text, fill=_TEXT, font=font)
        for j, rgb in enumerate(row):
            paste(rgb, x0 + j * cell, y, placeholder=True)
    suffix = Path(out_path).suffix.lower().lstrip(".")
    # PNG unless the name asks for WebP/JPEG (a sheet of photos for docs: a tenth the bytes).
    fmt = suffix if suffix in ("webp", "jpg", "jpeg") else "png"
    return save_image(out_path, np.asarray(sheet), fmt=fmt, quality=quality)

"""``stylerec sheet``: a contact sheet of products (rows) rendered in styles (columns).

The quickest way to judge a style library or a render mode by eye: the first
column is each original, every other column one style, with the style images
shown above their columns.  A product image that cannot be read gets a row of
grey placeholders and an error line naming it; the sheet is still written and
the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.commands._render_args import (
    STYLE_MAX_SIDE,
    add_render_options,
    make_renderer,
    scene_strengths,
    style_codes,
    unique_stems,
)

if TYPE_CHECKING:
    import numpy as np


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sheet`` sub-command."""
    p = subparsers.add_parser(
        "sheet",
        help="draw a contact sheet: products (rows) x styles (columns)",
        description=(
            "Render each IMAGE in each of --styles and draw one image: originals in the first "
            "column, one column per style, style images above their columns."
        ),
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="product images (rows)")
    p.add_argument(
        "--styles",
        nargs="+",
        action="extend",
        required=True,
        type=Path,
        metavar="STYLE_IMAGE",
        help="style images (columns)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="SHEET.png",
        help="output file: PNG, or WebP/JPEG when the name ends in .webp/.jpg (much smaller)",
    )
    p.add_argument("--quality", type=int, default=85, help="WebP/JPEG quality (default 85)")
    p.add_argument("--thumb", type=int, default=128, help="cell size in px (default 128)")
    p.add_argument("--title", default=None, help="a title line above the grid")
    add_render_options(p, default_max_side=384)
    p.set_defaults(func=run)


def build_rows(
    images: list[Path], codes: np.ndarray, renderer: object, strengths: list[float] | None = None
) -> tuple[list[list[np.ndarray | None]], dict[Path, str]]:
    """``[original, render per style]`` per image, and the errors of unreadable images.

    The product mask is estimated once per image and reused for every style
    (as the nightly render stage does), so S styles cost one mask, not S.
    """
    from stylizer.image_io import ImageError, load_image
    from stylizer.masks import product_mask

    rows: list[list[np.ndarray | None]] = []
    errors: dict[Path, str] = {}
    mode = renderer.mode  # type: ignore[attr-defined]
    for path in images:
        try:
            loaded = load_image(path, max_side=renderer.max_side)  # type: ignore[attr-defined]
        except (ImageError, FileNotFoundError) as exc:
            errors[path] = str(exc)
            rows.append([None] * (1 + len(codes)))
            continue
        n = len(codes)
        mask_for = getattr(renderer, "mask_for", None) or product_mask
        masks = None if mode == "full" else [mask_for(loaded.rgb, alpha=loaded.alpha)] * n
        try:
            renders = renderer.render(  # type: ignore[attr-defined]
                [loaded.rgb] * n, codes, masks, scene_strengths=strengths
            )
        except (ValueError, RuntimeError) as exc:
            errors[path] = f"{path}: render failed: {exc}"
            renders = [None] * n
        rows.append([loaded.rgb, *renders])
    return rows, errors


def run(args: argparse.Namespace) -> int:
    """Encode the styles, render the grid, draw and write the sheet."""
    from stylizer.encoder import StyleEncoder
    from stylizer.image_io import load_image
    from stylizer.sheet import contact_sheet

    if args.thumb < 16:
        raise ValueError(f"--thumb must be >= 16, got {args.thumb}")
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {args.quality}")
    style_names = unique_stems(args.styles, "style images")
    encoder = StyleEncoder(device=args.device)
    codes = style_codes(args.styles, encoder)
    renderer = make_renderer(args, encoder)
    strengths = scene_strengths(args, len(args.styles))
    rows, errors = build_rows(list(args.images), codes, renderer, strengths)
    for message in errors.values():
        print(f"stylerec sheet: failed: {message}", file=sys.stderr)
    header = [None] + [load_image(p, max_side=STYLE_MAX_SIDE).rgb for p in args.styles]
    out = contact_sheet(
        rows,
        args.out,
        row_labels=[p.stem for p in args.images],
        col_labels=["original", *style_names],
        header=header,
        thumb=args.thumb,
        title=args.title,
        quality=args.quality,
    )
    print(
        f"wrote {out} ({len(args.images)} image(s) x {len(style_names)} style(s), "
        f"mode {args.mode}); {len(errors)} image(s) failed"
    )
    return 1 if errors else 0

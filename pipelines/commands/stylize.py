"""``stylerec stylize``: render product images in one or more styles, one file per pair.

For a merchant or a designer trying a style on a few products before it goes
into the style library, and for scripts.  Bad product images never stop the
batch: each is reported on stderr with its file name, the rest render, and the
exit status is 1 when any failed (0 when all rendered, 2 for usage errors such
as an unreadable style image).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pipelines.commands._render_args import (
    add_render_options,
    make_renderer,
    output_stems,
    scene_strengths,
    style_codes,
    unique_stems,
)

FORMATS = ("png", "webp", "jpeg")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``stylize`` sub-command."""
    p = subparsers.add_parser(
        "stylize",
        help="render product images in a style (one file per image and style)",
        description=(
            "Render each IMAGE in each --style and write DIR/<image>__<style>.<format>. "
            "Unreadable images are reported and skipped; exit status 1 if any failed."
        ),
    )
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="product images")
    p.add_argument(
        "--style",
        dest="styles",
        nargs="+",
        action="extend",
        required=True,
        type=Path,
        metavar="STYLE_IMAGE",
        help="style image(s) (repeatable)",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument("--format", dest="fmt", choices=FORMATS, default="png", help="output format")
    p.add_argument("--quality", type=int, default=95, help="WebP/JPEG quality (default 95)")
    # 384 like `stylerec sheet` and the demo: a try-out should look like what the shop shows
    add_render_options(p, default_max_side=384)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Encode the styles, render every image in each, report failures per file."""
    from stylizer.encoder import StyleEncoder

    style_names = unique_stems(args.styles, "style images")
    image_names = output_stems(args.images)  # a.jpg and a.tif: a_jpg, a_tif
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be in 1..100, got {args.quality}")
    t0 = time.perf_counter()
    encoder = StyleEncoder(device=args.device)
    codes = style_codes(args.styles, encoder)
    renderer = make_renderer(args, encoder)
    failed: dict[Path, str] = {}
    written = 0
    strengths = scene_strengths(args, len(style_names))
    for name, code, scene_strength in zip(style_names, codes, strengths, strict=True):
        renderer.scene_strength = scene_strength  # type: ignore[attr-defined]
        results = renderer.render_paths(  # type: ignore[attr-defined]
            args.images, code, args.out, fmt=args.fmt, style_name=name, quality=args.quality,
            names=image_names,
        )
        for r in results:
            if r.ok:
                written += 1
            elif r.path not in failed:  # the same bad file fails under every style
                failed[r.path] = r.error or "unknown error"
                print(f"stylerec stylize: failed: {r.error}", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    print(
        f"wrote {written} file(s) to {args.out} ({len(args.images)} image(s) x "
        f"{len(style_names)} style(s), mode {args.mode}); {len(failed)} image(s) failed; "
        f"{elapsed:.1f} s"
    )
    return 1 if failed else 0

"""Options and helpers shared by ``stylerec stylize`` and ``stylerec sheet``.

Both commands turn style images into style codes and build a
:class:`stylizer.Renderer` from the same flags, so the flags read the same and
a bad style image fails the same way (one line naming the file) in both.
No ``register`` here: the CLI's discovery skips this module.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the stylizer load when a command runs, not for `--help`
    import numpy as np

#: Style images are encoded at this long side (the encoder crops and resizes to 256
#: anyway; loading them smaller bounds the memory of a huge painting scan).
STYLE_MAX_SIDE = 512


def strength(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def max_side(text: str) -> int:
    """argparse type: a long side of at least 16 px."""
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be >= 16, got {value}")
    return value


def add_render_options(p: argparse.ArgumentParser, default_max_side: int) -> None:
    """``--mode``, ``--strength``, ``--max-side``, ``--device``, ``--batch-size``, ``--generator``."""
    p.add_argument(
        "--mode",
        choices=("full", "background", "harmonize"),
        default="background",
        help="full: whole frame; background: product kept, scene stylized (default); "
        "harmonize: product keeps its colours within a small ΔE and takes a touch of texture",
    )
    p.add_argument(
        "--strength",
        type=strength,
        default=1.0,
        help="0..1, how far from the image's own style towards the target (default 1)",
    )
    p.add_argument(
        "--max-side",
        type=max_side,
        default=default_max_side,
        help="render at the input size, downscaled to this long side (default %(default)s)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA if present)")
    p.add_argument("--batch-size", type=int, default=8,
                   help="images per generator call (default %(default)s)")
    p.add_argument(
        "--generator",
        type=Path,
        default=None,
        metavar="WEIGHTS",
        help="a student generator from `stylerec train-generator` (OUT/student.safetensors) "
        "instead of the imported one",
    )
    p.add_argument(
        "--scene-strength",
        type=strength,
        nargs="+",
        default=[0.5],
        metavar="S",
        help="0..1, how much of the stylized scene shows over the clean backdrop: one value, "
        "or one per style (default 0.5: calm)",
    )
    p.add_argument(
        "--shadow",
        type=strength,
        default=0.3,
        help="0..1, opacity of the product's contact shadow on the scene (default 0.3; 0: none)",
    )


def make_renderer(args: argparse.Namespace, encoder: object) -> object:
    """A Renderer from the parsed options, sharing ``encoder`` (used when strength < 1)."""
    from stylizer.renderer import Renderer

    runtime = None
    if getattr(args, "generator", None) is not None:
        from stylizer.student import make_student_runtime

        runtime = make_student_runtime(args.generator, device=args.device)
    return Renderer(
        runtime=runtime,
        mode=args.mode,
        strength=args.strength,
        max_side=args.max_side,
        device=args.device,
        batch_size=max(1, args.batch_size),
        encoder=encoder,
        scene_strength=args.scene_strength[0],
        shadow_strength=args.shadow,
    )


def scene_strengths(args: argparse.Namespace, n_styles: int) -> list[float]:
    """``--scene-strength`` as one value per style (one value repeats)."""
    values = list(args.scene_strength)
    if len(values) == 1:
        return values * n_styles
    if len(values) != n_styles:
        raise ValueError(
            f"--scene-strength: give one value or one per style ({n_styles}), got {len(values)}"
        )
    return values


def style_codes(paths: Sequence[Path], encoder: object) -> np.ndarray:
    """``(len(paths), 100)`` style codes; a bad style image raises ``ImageError`` naming it.

    A style that cannot be read is fatal (unlike a bad product image): every
    output of the run would be missing that column, which is a usage error.
    """
    import numpy as np

    from stylizer.image_io import load_image

    images = [load_image(p, max_side=STYLE_MAX_SIDE).rgb for p in paths]
    return np.asarray(encoder.encode(images), dtype=np.float32)  # type: ignore[attr-defined]


def unique_stems(paths: Sequence[Path], what: str) -> list[str]:
    """File stems, refusing duplicates: outputs and labels are named after them."""
    stems = [p.stem for p in paths]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise ValueError(f"two {what} share the name {dupes[0]!r}; rename one")
    return stems


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Distinct output names for input images: the stem, qualified only where stems clash.

    ``a.jpg`` and ``a.tif`` become ``a_jpg`` and ``a_tif`` (``b.png`` stays ``b``);
    the same file name in two folders gets ``_2``, ``_3``... so no output
    overwrites another and no batch is refused for it.
    """
    stems = [p.stem for p in paths]
    out = [
        f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 and p.suffix
        else p.stem
        for p in paths
    ]
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            out[i] = f"{name}_{seen[name]}"
    return out

"""``stylerec train-generator``: distil the imported generator into a faster student.

Trains :class:`stylizer.training.network.StudentGenerator` against the imported
generator on product photos and style codes (library + blends), checkpoints
atomically (a killed run resumes with ``--resume``), then evaluates teacher vs
student on held-out photos and styles and writes ``report.html`` beside the
weights.  Heavy modules are imported inside :func:`run` so ``stylerec --help``
stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train-generator`` sub-command."""
    p = subparsers.add_parser(
        "train-generator",
        help="train a faster student generator against the imported one",
        description=(
            "Distil the imported conditioned generator (teacher) into a narrower student: "
            "pixel, perceptual (style predictor trunk), style-code and PatchGAN losses. "
            "Writes OUT/student.safetensors (use it with --generator or [render] generator), "
            "OUT/checkpoint.pt (resumable) and OUT/report.html (loss curves, teacher vs "
            "student on held-out photos and styles, metrics)."
        ),
    )
    p.add_argument("--images", type=Path, action="append", required=True, metavar="DIR",
                   help="folder of training photos (repeatable; every image trains)")
    p.add_argument("--split-images", type=Path, default=None, metavar="DIR",
                   help="folder whose first --split-train photos (by name) train and the rest "
                   "are held out for evaluation")
    p.add_argument("--split-train", type=_positive_int, default=40,
                   help="photos of --split-images that train (default 40)")
    p.add_argument("--styles", type=Path, required=True, metavar="DIR",
                   help="style images; the first --style-train (by name) train, the rest are "
                   "held out for evaluation")
    p.add_argument("--style-train", type=_positive_int, default=9,
                   help="styles that train (default 9)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--steps", type=_positive_int, default=2000, help="training steps (default 2000)")
    p.add_argument("--size", type=int, default=128, help="crop side in px (default 128)")
    p.add_argument("--batch", type=_positive_int, default=4, help="crops per step (default 4)")
    p.add_argument("--width", type=float, default=0.5,
                   help="channel multiplier of the teacher's 8/16/32 (default 0.5)")
    p.add_argument("--blocks", type=int, default=5, help="residual blocks (default 5)")
    p.add_argument("--init", choices=("teacher", "scratch"), default="teacher",
                   help="start from a slice of the teacher's weights (default) or at random")
    for name, default in (("pixel", 1.0), ("perceptual", 0.2), ("code", 1.0), ("adversarial", 0.02)):
        p.add_argument(f"--w-{name}", type=float, default=default,
                       help=f"weight of the {name} loss (default {default}; 0 turns it off)")
    p.add_argument("--lr", type=float, default=1e-3, help="student learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA if present)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 for a polite background run)")
    p.add_argument("--checkpoint-every", type=_positive_int, default=50,
                   help="steps between checkpoints (default 50)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (a finished run only re-evaluates)")
    p.add_argument("--eval-size", type=int, default=384,
                   help="long side of the held-out evaluation renders (default 384)")
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation and report")
    p.add_argument("--json", action="store_true", help="print only a JSON summary")
    p.set_defaults(func=run)


def _split(args: argparse.Namespace) -> dict[str, list[Path]]:
    """Training and held-out photos and styles (deterministic: sorted file names)."""
    from stylizer.training.data import list_images, split_sorted

    train = [p for folder in args.images for p in list_images(folder)]
    eval_photos: list[Path] = []
    if args.split_images is not None:
        part, eval_photos = split_sorted(list_images(args.split_images), args.split_train)
        train += part
    styles = list_images(args.styles)
    n = min(args.style_train, len(styles))
    train_styles, eval_styles = split_sorted(styles, n)
    return {"train_photos": train, "eval_photos": eval_photos,
            "train_styles": train_styles, "eval_styles": eval_styles}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Train (or resume), then evaluate and write the report."""
    import torch

    from compute.device import torch_device
    from pipelines.commands._render_args import style_codes
    from stylizer.encoder import StyleEncoder
    from stylizer.training.data import CodeSampler, PhotoCrops
    from stylizer.training.losses import LossWeights
    from stylizer.training.trainer import CHECKPOINT, GeneratorTrainer, TrainConfig

    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    device = torch_device(args.device)
    out: Path = args.out
    if (out / CHECKPOINT).exists() and not args.resume:
        raise ValueError(f"{out} already holds a checkpoint; pass --resume or choose another --out")
    split = _split(args)
    weights = LossWeights(pixel=args.w_pixel, perceptual=args.w_perceptual, code=args.w_code,
                          adversarial=args.w_adversarial)  # fmt: skip
    config = TrainConfig(steps=args.steps, size=args.size, batch=args.batch, width=args.width,
                         blocks=args.blocks, lr=args.lr, init=args.init, weights=weights,
                         checkpoint_every=args.checkpoint_every, seed=args.seed,
                         device=str(device))  # fmt: skip
    encoder = StyleEncoder(device=str(device))
    train_codes = style_codes(split["train_styles"], encoder)
    crops = PhotoCrops(split["train_photos"], config.size)
    for path, reason in crops.skipped:
        print(f"skipped training photo {path}: {reason}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    (out / "split.json").write_text(json.dumps({k: [str(p) for p in v] for k, v in split.items()},
                                               indent=1))  # fmt: skip
    trainer = GeneratorTrainer(config, crops, CodeSampler(train_codes), out)
    t0 = time.perf_counter()
    history = trainer.fit(resume=args.resume, progress=None if not args.json else False)
    train_seconds = time.perf_counter() - t0
    summary: dict[str, object] = {
        "out": str(out), "steps": trainer.step, "train_seconds_this_call": round(train_seconds, 1),
        "train_photos": len(crops), "train_styles": len(train_codes),
        "final_losses": {k: v for k, v in history[-1].items() if k not in ("step", "seconds")},
    }  # fmt: skip
    if not args.no_eval and split["eval_photos"]:
        from pipelines.commands._train_report import evaluate_and_report

        summary.update(evaluate_and_report(args, trainer, split, encoder))
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return 0

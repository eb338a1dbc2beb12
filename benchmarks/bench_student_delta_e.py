"""Product colour fidelity of background renders: student generator vs the default one.

Renders every product photo of a demo world (``stylerec generate``) in
``background`` mode with the held-out artworks (the last 5 of
``../shared/data/styles`` by name) through the default generator and through each
``--student``, with the renderer estimating its own product mask as in
production, and measures the product's mean CIEDE2000 against the original
inside the world's EXACT masks (``masks/``).  2.3 is the just-noticeable
difference the acceptance asks for.

Run::

    flock /tmp/stylerec-heavy.lock .venv/bin/python benchmarks/bench_student_delta_e.py \\
        --world WORLD --student OUT/student.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from shared_data import require_photos


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, required=True, help="a `stylerec generate` folder")
    parser.add_argument("--student", type=Path, nargs="+", required=True)
    parser.add_argument("--items", type=int, default=40, help="first N products (default 40)")
    parser.add_argument("--max-side", type=int, default=384)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from stylizer.encoder import StyleEncoder
    from stylizer.image_io import load_image
    from stylizer.metrics import product_delta_e
    from stylizer.renderer import Renderer
    from stylizer.runtime import make_generator_runtime
    from stylizer.student import make_student_runtime

    torch.set_num_threads(args.threads)
    styles = sorted((require_photos() / "styles").glob("*.jpg"))[9:]
    codes = StyleEncoder(device="cpu").encode([load_image(p, max_side=512).rgb for p in styles])
    photos = sorted((args.world / "images").glob("*.png"))[: args.items]
    images = [load_image(p, max_side=args.max_side).rgb for p in photos]
    masks = []
    for p, img in zip(photos, images, strict=True):
        m = load_image(args.world / "masks" / p.name).rgb[..., 0].astype(np.float32) / 255.0
        if m.shape != img.shape[:2]:
            import cv2

            m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
        masks.append(m)
    runtimes = {"default": make_generator_runtime(device="cpu", threads=args.threads)}
    for path in args.student:
        runtimes[f"student {path.parent.name}"] = make_student_runtime(path, device="cpu",
                                                                       threads=args.threads)  # fmt: skip
    print(f"# product ΔE (CIEDE2000, mean inside the exact mask), {len(images)} demo products x "
          f"{len(styles)} held-out styles, background mode, long side {args.max_side}\n")
    print("| generator | mean ΔE | max ΔE | renders > 2.3 |")
    print("| --- | --- | --- | --- |")
    for name, rt in runtimes.items():
        r = Renderer("background", max_side=args.max_side, runtime=rt, device="cpu")
        des = []
        for code in codes:
            for img, mask, out in zip(images, masks, r.render(images, code), strict=True):
                des.append(product_delta_e(img, out, mask))
        des_a = np.asarray(des)
        print(f"| {name} ({rt.name}) | {des_a.mean():.3f} | {des_a.max():.3f} | "
              f"{int((des_a > 2.3).sum())} of {len(des_a)} |")


if __name__ == "__main__":
    main()

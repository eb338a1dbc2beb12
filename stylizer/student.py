"""Trained student generators in production: weight files, their hash, and runtimes.

A student (:class:`stylizer.training.network.StudentGenerator`, trained by
``stylerec train-generator``) is saved as one safetensors file whose metadata
holds its shape.  Production names it by path (``[render] generator`` or
``--generator``); its content hash goes into the run record and the render cache
key, so renders of a different generator are never mistaken for each other.

Runtimes take ``(content[B,3,H,W] in [0,1], codes[B,100])`` like
:mod:`stylizer.runtime`'s.  On CPU the student runs as a plain float ONNX graph in
onnxruntime with all graph optimisations on (no int8 rounding points to keep
exact, unlike the teacher's export), which measured faster than torch there
(``benchmarks/bench_render.py``); on CUDA it runs in torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compute.device import torch_device
from stylizer.networks import pad_to_multiple
from stylizer.training.network import StudentGenerator, StudentSpec
from stylizer.weights import frozen_for_inference

log = logging.getLogger(__name__)

FORMAT = "stylerec-student-1"
STUDENT_EXPORT_VERSION = "1"  # bump when the student's ONNX export changes
STUDENT_BACKENDS = ("auto", "torch", "onnx")


def save_student(student: StudentGenerator, path: str | os.PathLike[str]) -> Path:
    """Write the student's weights and shape to ``path`` (safetensors, atomic rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in student.state_dict().items()}
    meta = {"format": FORMAT, "spec": json.dumps(student.spec.to_dict())}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_student(
    path: str | os.PathLike[str], device: str | torch.device | None = None
) -> StudentGenerator:
    """A saved student in eval mode with frozen weights; a file that is not one raises ValueError."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ValueError(f"{path} is not a student generator file: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a student generator file (format {meta.get('format')!r})")
    spec = StudentSpec(**json.loads(meta["spec"]))
    return frozen_for_inference(StudentGenerator(spec), state, device)


def generator_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the weight file (hex): names the generator in run records and cache keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator weights not found: {path}")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def render_model_version(generator: str | os.PathLike[str] | None) -> tuple[str, str | None]:
    """(version for render cache keys, the generator's SHA-256 or None for the imported one).

    The imported networks' :func:`stylizer.weights.model_version` stays in the
    version (it also covers the style predictor); a student adds its weight
    hash, so renders of two generators never share a cache key.
    """
    from stylizer.weights import model_version

    if generator is None:
        return model_version(), None
    digest = generator_hash(generator)
    return f"{model_version()}+student-{digest[:16]}", digest


class StudentTorchRuntime:
    """The student in torch on a device (fp32), under inference mode."""

    def __init__(self, student: StudentGenerator, device: torch.device) -> None:
        self.device = device
        self.student = student.to(device=device, dtype=torch.float32).eval()
        self.name = f"student-torch-fp32-{device.type}"

    @torch.inference_mode()
    def __call__(self, content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.student(content.to(self.device, torch.float32), codes.to(self.device, torch.float32))
        return out.to(content.device, torch.float32)


class StudentOnnxRuntime:
    """The student exported to float ONNX, run by onnxruntime on CPU with full optimisation.

    The export is cached by the weight file's hash, so every process of a night
    (and every Ray worker) reuses one file.  Images go through one at a time, as
    in :class:`stylizer.runtime.OnnxGeneratorRuntime` (activations stay in cache).
    """

    def __init__(
        self, student: StudentGenerator, digest: str | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        from stylizer.runtime import export_generator_onnx
        from stylizer.weights import cache_dir

        if digest is None:  # a module not from a file: hash its weights
            h = hashlib.sha256()
            for k, v in student.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().float().cpu().numpy().tobytes())
            digest = h.hexdigest()
        path = cache_dir() / "onnx" / (
            f"student-{digest[:20]}-e{STUDENT_EXPORT_VERSION}-ort{ort.__version__}.onnx"
        )
        if not path.is_file():
            log.info("exporting student generator to %s", path)
            export_generator_onnx(student, path, rewrite_output_conv=True)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        n_threads = threads if threads is not None else torch.get_num_threads()
        opts.intra_op_num_threads = n_threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        self.name = f"student-onnx-fp32-cpu-t{n_threads}"

    def __call__(self, content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if content.ndim != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be [B,3,H,W], got {tuple(content.shape)}")
        if codes.ndim != 2 or codes.shape[0] != content.shape[0] or codes.shape[1] != 100:
            raise ValueError(f"codes must be [B,100] with B={content.shape[0]}, got {tuple(codes.shape)}")
        x, h, w = pad_to_multiple(content.detach().float().cpu())
        xs, cs = x.numpy(), codes.detach().float().cpu().numpy()
        out = np.empty((xs.shape[0], 3, h, w), np.float32)
        for i in range(xs.shape[0]):
            feed = {"content": np.ascontiguousarray(xs[i : i + 1]),
                    "code": np.ascontiguousarray(cs[i : i + 1])}  # fmt: skip
            out[i] = self.session.run(None, feed)[0][0, :, :h, :w]
        return torch.from_numpy(out).to(content.device)


def make_student_runtime(
    path: str | os.PathLike[str],
    device: str | torch.device | None = None,
    backend: str = "auto",
    threads: int | None = None,
) -> Any:
    """The runtime for the student saved at ``path``: ``auto`` = onnx on CPU, torch on CUDA."""
    if backend not in STUDENT_BACKENDS:
        raise ValueError(f"backend must be one of {STUDENT_BACKENDS}, got {backend!r}")
    dev = torch_device(None if device is None else str(device))
    student = load_student(path)
    if backend == "auto":
        backend = "torch" if dev.type == "cuda" else "onnx"
    if backend == "onnx":
        if dev.type != "cpu":
            raise ValueError("the onnx backend runs on CPU only; use backend='torch' on CUDA")
        return StudentOnnxRuntime(student, generator_hash(path), threads=threads)
    return StudentTorchRuntime(student, dev)

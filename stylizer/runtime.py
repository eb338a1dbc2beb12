"""Generator runtimes: the fast inference paths the Renderer calls.

All runtimes take ``(content[B,3,H,W] float32 in [0,1], codes[B,100])`` and return
``[B,3,H,W]`` float32 in [0,1] on the content's device, for any H, W.

Why more than one path: the reference network is int8-quantized after almost
every op, and its output depends chaotically on last-bit differences in those
roundings (a float evaluation of the same weights is only 17-27 dB from it).
Evaluating our module with the same arithmetic as the reference is therefore
what parity needs:

* ``"onnx"`` exports OUR module (with its int8 rounding points as
  QuantizeLinear/DequantizeLinear pairs, dynamic batch/H/W axes) and runs it in
  onnxruntime with graph rewrites off.  It then executes the same kernels in
  the same order as the reference graph: bit-identical output at 384x384, and
  the fastest path on CPU (fewer ops than the reference graph, no NHWC
  transposes, and no padding of non-square images to a square).
* ``"torch"`` runs the module directly (CPU or CUDA).  float32 convolutions in
  a different summation order flip occasional roundings; mean PSNR vs the
  reference is ~32 dB (min ~25).  ``precision="fp64"`` gets closer (~35 dB)
  at a speed cost; ``"fp16"``/``"bf16"`` are offered for GPUs but are not
  reference-faithful.

``make_generator_runtime(backend="auto")`` picks ``onnx`` on CPU and torch
float32 on CUDA (onnxruntime's CUDA provider is not in our dependencies).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from data.device import torch_device
from stylizer.networks import ConditionedAdaINGenerator, pad_to_multiple
from stylizer.weights import cache_dir, load_generator, model_version

log = logging.getLogger(__name__)

EXPORT_VERSION = "1"  # bump when the export below changes: invalidates cached ONNX files
BACKENDS = ("auto", "torch", "onnx")
_PRECISIONS = {
    "fp32": torch.float32,
    "fp64": torch.float64,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


class GeneratorRuntime(Protocol):
    """What the Renderer needs: a name (for logs/benchmarks) and a batched call."""

    name: str

    def __call__(self, content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor: ...


def _check_inputs(content: torch.Tensor, codes: torch.Tensor) -> None:
    if content.ndim != 4 or content.shape[1] != 3:
        raise ValueError(f"content must be [B,3,H,W], got {tuple(content.shape)}")
    if codes.ndim != 2 or codes.shape[0] != content.shape[0] or codes.shape[1] != 100:
        raise ValueError(
            f"codes must be [B,100] with B={content.shape[0]}, got {tuple(codes.shape)}"
        )


class TorchGeneratorRuntime:
    """The PyTorch module on a device, in the given precision, under inference mode."""

    def __init__(
        self, generator: ConditionedAdaINGenerator, device: torch.device, precision: str = "fp32"
    ) -> None:
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        self.device = device
        self.dtype = _PRECISIONS[precision]
        self.generator = generator.to(device=device, dtype=self.dtype)
        self.name = f"torch-{precision}-{device.type}"
        if device.type == "cuda":
            # TF32 convolutions round inputs to 10 mantissa bits: too coarse for the int8 grid
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    @torch.inference_mode()
    def __call__(self, content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:  # noqa: D102
        _check_inputs(content, codes)
        x = content.to(self.device, self.dtype)
        c = codes.to(self.device, self.dtype)
        out = self.generator(x, c)
        return out.to(content.device, torch.float32)


class _Body(torch.nn.Module):
    """Export wrapper: the network on inputs already padded to a multiple of 4."""

    def __init__(self, generator: ConditionedAdaINGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, content: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.generator._body(content, code)


def export_generator_onnx(generator: ConditionedAdaINGenerator, path: Path) -> Path:
    """Export our generator to ONNX with dynamic batch, height and width.

    The int8 emulation points become QuantizeLinear/DequantizeLinear pairs; the
    file is written to a temporary name and renamed, so a concurrent reader
    never sees half a model.
    """
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    gen = generator.float().cpu().eval()
    example = (torch.rand(1, 3, 64, 64), torch.zeros(1, gen.style_dim))
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter is chatty about constant folding
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Body(gen),
                example,
                tmp,
                input_names=["content", "code"],
                output_names=["image"],
                dynamic_axes={
                    "content": {0: "B", 2: "H", 3: "W"},
                    "code": {0: "B"},
                    "image": {0: "B", 2: "H", 3: "W"},
                },
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxGeneratorRuntime:
    """Our exported generator in onnxruntime (CPU), reference-exact arithmetic.

    Graph optimizations are off on purpose: onnxruntime's rewrites move and merge
    the quantize/dequantize pairs, which changes roundings and costs 10+ dB of
    parity; without them the session runs the same kernels as the reference.
    """

    def __init__(
        self, generator: ConditionedAdaINGenerator | None = None, threads: int | None = None
    ) -> None:
        import onnxruntime as ort

        gen = generator if generator is not None else load_generator()
        emul = "q" if gen.int8_emulation else "f"
        path = cache_dir() / "onnx" / f"generator-{model_version()}-e{EXPORT_VERSION}{emul}.onnx"
        if not path.is_file() or generator is not None:
            if generator is not None:  # a caller's module may differ from the cached one
                path = path.with_name(f"{path.stem}-custom-{os.getpid()}-{id(generator)}.onnx")
            log.info("exporting generator to %s", path)
            export_generator_onnx(gen, path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        n_threads = threads if threads is not None else torch.get_num_threads()
        opts.intra_op_num_threads = n_threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        self.name = f"onnx-int8emul-cpu-t{n_threads}"

    def __call__(self, content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:  # noqa: D102
        _check_inputs(content, codes)
        x, h, w = pad_to_multiple(content.detach().float().cpu())
        feed = {
            "content": np.ascontiguousarray(x.numpy()),
            "code": np.ascontiguousarray(codes.detach().float().cpu().numpy()),
        }
        out = self.session.run(None, feed)[0][:, :, :h, :w]
        return torch.from_numpy(np.ascontiguousarray(out)).to(content.device)


def make_generator_runtime(
    device: str | torch.device | None = None,
    backend: str = "auto",
    precision: str | None = None,
    threads: int | None = None,
    emulate_int8: bool = True,
) -> Any:
    """The generator runtime for ``device`` (default: CUDA if present, else CPU).

    ``backend``: ``"auto"`` (CPU: onnx, CUDA: torch fp32), ``"torch"`` or
    ``"onnx"`` (CPU only).  ``precision`` applies to torch: fp32 (default),
    fp64, fp16, bf16.  ``emulate_int8=False`` gives the plain float network.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dev = torch_device(None if device is None else str(device))
    if backend == "auto":
        backend = "torch" if dev.type == "cuda" else "onnx"
    if backend == "onnx":
        if dev.type != "cpu":
            raise ValueError("the onnx backend runs on CPU only; use backend='torch' on CUDA")
        if precision not in (None, "fp32"):
            raise ValueError(
                f"the onnx backend computes in fp32 (with int8 rounding), not {precision}"
            )
        gen = None if emulate_int8 else load_generator(emulate_int8=False)
        return OnnxGeneratorRuntime(gen, threads=threads)
    return TorchGeneratorRuntime(
        load_generator(emulate_int8=emulate_int8), dev, precision or "fp32"
    )

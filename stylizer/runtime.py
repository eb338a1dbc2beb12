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
  onnxruntime with only the basic graph rewrites and the QDQ fusions off.  It
  then executes the same convolution kernels in the same order as the
  reference graph, except for the output convolution (see
  :func:`space_to_depth_conv`), and is the fastest path on CPU: about 1.2x the
  reference at 384x384 (``benchmarks/bench_render.py``), more on non-square
  photos, which the reference pads to a square.  Parity over 14 artworks x 8
  photos: median 87.6 dB, 89 of 112 pairs >= 80 dB, 16 below 40 dB, minimum
  29.2 dB.  The low pairs are the reference's doing: its session fuses the
  instance-norm means, one multiply and the adds into int8 kernels
  (QLinearGlobalAveragePool/Mul/Add) that round ties differently from the float
  Q/DQ arithmetic, and the network amplifies one flipped statistic; without the
  output-conv rewrite the minimum and the sub-40 count are the same.
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

EXPORT_VERSION = "2"  # bump when the export below changes: invalidates cached ONNX files
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
        _rewrite_output_conv(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


#: Name the TorchScript exporter gives the output layer's convolution (8 -> 3 channels, 9x9).
OUTPUT_CONV = "/expand.2/conv/Conv"
#: Block size of the space-to-depth rewrite of that convolution (see space_to_depth_conv).
OUTPUT_CONV_BLOCK = 4


def space_to_depth_conv(
    weight: np.ndarray, bias: np.ndarray, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the same (valid, stride 1) convolution run on a space-to-depth input.

    Why: the generator's output layer is an 8 -> 3 channel 9x9 convolution at
    full resolution.  onnxruntime runs it as one GEMM with only 3 output rows,
    which wastes most of the CPU's vector width: a quarter of the whole
    network's time at 384x384.  With the input rearranged in ``block`` x
    ``block`` cells (``SpaceToDepth``, ``block**2 * C`` channels) every output
    cell is ``block**2 * 3`` channels of a small convolution, the GEMM has 48
    rows instead of 3, and ``DepthToSpace`` (DCR) puts the pixels back.  The
    products are the same; only the summation order of this one layer changes,
    and its roundings stay local to their pixel (no later convolution mixes
    them): the rewrite alone moves the output by >= 80 dB PSNR.

    Output cell offset ``(dy, dx)`` takes input cell ``(a_h, a_w)``, sub-pixel
    ``(b_h, b_w)`` with the original tap ``(block*a_h + b_h - dy, block*a_w + b_w - dx)``
    when that lies inside the kernel, zero otherwise.  Channel orders follow the
    ONNX definitions: SpaceToDepth ``(b_h*block + b_w)*C + c``, DepthToSpace
    DCR ``(dy*block + dx)*O + o``.
    """
    out_ch, in_ch, k, kw = weight.shape
    if k != kw:
        raise ValueError(f"square kernels only, got {k}x{kw}")
    taps = -(-(block - 1 + k) // block)
    w2 = np.zeros((block * block * out_ch, block * block * in_ch, taps, taps), np.float32)
    for dy in range(block):
        for dx in range(block):
            rows = slice((dy * block + dx) * out_ch, (dy * block + dx + 1) * out_ch)
            for bh in range(block):
                for bw in range(block):
                    cols = slice((bh * block + bw) * in_ch, (bh * block + bw + 1) * in_ch)
                    for ah in range(taps):
                        i = block * ah + bh - dy
                        for aw in range(taps):
                            j = block * aw + bw - dx
                            if 0 <= i < k and 0 <= j < k:
                                w2[rows, cols, ah, aw] = weight[:, :, i, j]
    return w2, np.tile(bias.astype(np.float32), block * block)


def _rewrite_output_conv(path: str) -> None:
    """Replace the output convolution in the exported file by its space-to-depth form.

    Valid because its input is the reflect-padded ``(H+8) x (W+8)`` map with H, W
    multiples of 4 (the runtime pads to that), so both sides divide by the block.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(path)
    graph = model.graph
    node = next((n for n in graph.node if n.name == OUTPUT_CONV), None)
    if node is None or node.op_type != "Conv" or len(node.input) != 3:
        raise RuntimeError(f"exported generator has no {OUTPUT_CONV} with a bias to rewrite")
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}

    def tensor(name: str) -> np.ndarray:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return numpy_helper.to_array(consts[name].attribute[0].t)

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if any(v != 1 for v in attrs.get("strides", [1])) or any(attrs.get("pads", [0])):
        raise RuntimeError(f"{OUTPUT_CONV}: expected a valid stride-1 convolution, got {attrs}")
    b = OUTPUT_CONV_BLOCK
    w2, b2 = space_to_depth_conv(tensor(node.input[1]), tensor(node.input[2]), b)
    src, dst = node.input[0], node.output[0]
    w_name, b_name = f"{OUTPUT_CONV}/s2d_weight", f"{OUTPUT_CONV}/s2d_bias"
    graph.initializer.extend(
        [numpy_helper.from_array(w2, w_name), numpy_helper.from_array(b2, b_name)]
    )
    at = list(graph.node).index(node)
    graph.node.remove(node)
    replacement = [
        helper.make_node(
            "SpaceToDepth", [src], [f"{src}/s2d"], blocksize=b, name=f"{OUTPUT_CONV}/s2d"
        ),
        helper.make_node(
            "Conv",
            [f"{src}/s2d", w_name, b_name],
            [f"{dst}/s2d"],
            kernel_shape=list(w2.shape[2:]),
            name=f"{OUTPUT_CONV}/s2d_conv",
        ),
        helper.make_node(
            "DepthToSpace",
            [f"{dst}/s2d"],
            [dst],
            blocksize=b,
            mode="DCR",
            name=f"{OUTPUT_CONV}/d2s",
        ),
    ]
    for offset, new in enumerate(replacement):
        graph.node.insert(at + offset, new)
    onnx.checker.check_model(model)
    onnx.save(model, path)


class OnnxGeneratorRuntime:
    """Our exported generator in onnxruntime (CPU), reference-exact arithmetic.

    Session options are chosen for parity first: onnxruntime's QDQ fusions
    (int8 kernels) and its NCHWc convolution layout change the roundings and
    cost 1-20 dB of parity, so only the basic rewrites run (constant folding,
    dead-node removal: arithmetic untouched) and ``session.disable_quant_qdq``
    keeps every quantize/dequantize pair where the reference has it.
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
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
        n_threads = threads if threads is not None else torch.get_num_threads()
        opts.intra_op_num_threads = n_threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        self.name = f"onnx-int8emul-cpu-t{n_threads}"

    def __call__(self, content: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Stylize a batch; images go through the session one at a time.

        One at a time because on CPU that is faster than a batched run (the
        activations of one 384x384 image stay in cache; ~15 % more images/s in
        ``benchmarks/bench_render.py``) and the results are the same per image.
        """
        _check_inputs(content, codes)
        x, h, w = pad_to_multiple(content.detach().float().cpu())
        xs = x.numpy()
        cs = codes.detach().float().cpu().numpy()
        out = np.empty((xs.shape[0], 3, h, w), np.float32)
        for i in range(xs.shape[0]):
            feed = {
                "content": np.ascontiguousarray(xs[i : i + 1]),
                "code": np.ascontiguousarray(cs[i : i + 1]),
            }
            out[i] = self.session.run(None, feed)[0][0, :, :h, :w]
        return torch.from_numpy(out).to(content.device)


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

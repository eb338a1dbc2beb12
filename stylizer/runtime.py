"""Generator runtimes: the fast inference paths the Renderer calls.

All runtimes take ``(content[B,3,H,W] float32 in [0,1], codes[B,100])`` and return
``[B,3,H,W]`` float32 in [0,1] on the content's device, for any H, W.

Why more than one path: the reference network is int8-quantized after almost
every op, and its output depends chaotically on last-bit differences in those
roundings (a float evaluation of the same weights is only 17-27 dB from it).
Evaluating our module with the same arithmetic as the reference is therefore
what parity needs:

* ``"onnx"`` exports OUR module (with its int8 rounding points as
  QuantizeLinear/DequantizeLinear pairs, dynamic batch/H/W axes), puts in the
  int8 kernels that the reference session fuses (QLinearConv, and the
  instance norms' QLinearGlobalAveragePool/Mul/Add, with the reference's
  int8/uint8 operand types: :func:`_mirror_fused_kernels`), and runs it in
  onnxruntime with only the basic graph rewrites and the QDQ fusions off.  It
  then executes the same kernels in the same order as the reference graph,
  except for the output convolution (see :func:`space_to_depth_conv`), and is
  the fastest path on CPU: about 1.3x the reference at 384x384
  (``benchmarks/bench_render.py``), more on non-square photos, which the
  reference pads to a square.  Parity over 14 artworks x 8 photos: min 77 dB,
  median 88 dB; the remaining differences are last-bit roundings of the output
  convolution's reordered sum.  With ``OnnxGeneratorRuntime(bit_exact=True)``
  (output convolution as the reference runs it) all 112 outputs are
  bit-identical to the reference's.  Before the fused kernels were mirrored,
  one pair was at 29.2 dB: a single value of the reference's QLinearConv
  rounded to the other side of a near-tie, and the network amplified it.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from compute.device import torch_device
from stylizer.networks import ConditionedAdaINGenerator, pad_to_multiple
from stylizer.weights import (
    FUSED_OPERANDS,
    FusedKernel,
    cache_dir,
    dequantize,
    load_generator,
    model_version,
    reference_fused_kernels,
)

log = logging.getLogger(__name__)

EXPORT_VERSION = "3"  # bump when the export below changes: invalidates cached ONNX files
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


def export_generator_onnx(
    generator: ConditionedAdaINGenerator,
    path: Path,
    fused: Sequence[FusedKernel] | None = None,
    rewrite_output_conv: bool = True,
) -> Path:
    """Export our generator to ONNX with dynamic batch, height and width.

    The int8 emulation points become QuantizeLinear/DequantizeLinear pairs; where
    the reference session runs a fused int8 kernel instead (``fused``, default
    :func:`stylizer.weights.reference_fused_kernels` when the emulation is on),
    the export runs that same kernel (see :func:`_mirror_fused_kernels`).
    ``rewrite_output_conv`` runs the output convolution in its faster
    space-to-depth form (:func:`space_to_depth_conv`).  The file is written to a temporary name and renamed, so a concurrent reader
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
        if rewrite_output_conv:
            _rewrite_output_conv(tmp)
        if gen.int8_emulation:
            _mirror_fused_kernels(tmp, reference_fused_kernels() if fused is None else fused)
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
    them; only the last instance norm's statistics see them): over the 112
    parity pairs the rewrite leaves the output >= 77 dB PSNR from the
    reference's (``OnnxGeneratorRuntime(bit_exact=True)`` skips it).

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


def _point_of(node_name: str) -> str:
    """Exported QuantizeLinear node name -> ActQuant path (``/residual.0/norm1/q_in/...``)."""
    return node_name.strip("/").removesuffix("/QuantizeLinear").replace("/", ".")


def _mirror_fused_kernels(path: str, kernels: Sequence[FusedKernel]) -> None:
    """Run the reference session's fused int8 kernels where it runs them.

    Why: the reference session (onnxruntime defaults) executes some of its
    quantized groups as integer kernels (see
    :func:`stylizer.weights.reference_fused_kernels`) that requantize with a
    float32 multiplier; our float ``op -> QuantizeLinear`` lands on the other
    side of a near-tie now and then (one value of the 8 -> 16 convolution on
    antimonocromatismo x 0697813009 was enough for 29 dB).  Putting the same
    kernels, with the same integer inputs, integer types and constants, into
    our graph makes those steps bit-identical; the float convolutions between
    the Q/DQ pairs already are.  Each group is replaced where our export has the
    same arithmetic, otherwise the export fails loudly:

    * ``QLinearGlobalAveragePool`` (instance-norm mean and variance) on the int8
      input of ``GlobalAveragePool -> QuantizeLinear``;
    * ``QLinearMul`` / ``QLinearAdd`` on the two int8 inputs of ``Mul``/``Add``;
      an ``Add -> Relu -> QuantizeLinear`` becomes one ``QLinearAdd`` (the
      output zero point is -128, so saturation is the ReLU, as in the reference);
    * ``QLinearConv`` (the 8 -> 16 stride-2 convolution) on the quantized padded
      input, with the reference's int8 weights and int32 bias, the ReLU again
      folded into the saturation.

    Where the reference runs an operand as uint8 (zero point + 128), so does
    ours: the tensor's QuantizeLinear and every reader switch to the uint8 zero
    point.  That leaves every value the same and the kernels' rounding equal.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(path)
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    inits = {t.name: t for t in graph.initializer}
    quant = {_point_of(n.name): n for n in graph.node if n.op_type == "QuantizeLinear"}

    def const(name: str) -> np.ndarray:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Identity":
            return const(node.input[0])
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        raise RuntimeError(f"exported generator: {name!r} is not a constant")

    def fail(kernel: FusedKernel, why: str) -> RuntimeError:
        return RuntimeError(
            f"cannot mirror the reference's {kernel.op_type} at {kernel.point}: {why}"
        )

    def dq_inputs(kernel: FusedKernel, tensor: str) -> list[str]:
        node = producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            raise fail(kernel, f"{tensor!r} is not a dequantized int8 tensor")
        return list(node.input[:3])

    def relu_input(kernel: FusedKernel, q: Any) -> str:
        if int(const(q.input[2])) != -128:
            raise fail(kernel, "a ReLU folds into the saturation only with zero point -128")
        return producer[q.input[0]].input[0]

    added: list[Any] = []
    replaced: dict[str, list[Any]] = {}  # QuantizeLinear node name -> what computes it now
    uint8: dict[str, bool] = {}  # quantized tensor -> runs as uint8 (as in the reference)
    for k in kernels:
        q = quant.get(k.point)
        if q is None:
            raise fail(k, "no such quantization point in the export")
        src = producer[q.input[0]]
        ys, yzp = q.input[1], q.input[2]
        new: list[Any] = []
        if k.op_type == "QLinearGlobalAveragePool" and src.op_type == "GlobalAveragePool":
            new.append(helper.make_node(
                k.op_type, [*dq_inputs(k, src.input[0]), ys, yzp], [q.output[0]],
                domain="com.microsoft", channels_last=0, name=f"{q.name}/{k.op_type}",
            ))  # fmt: skip
        elif k.op_type in ("QLinearMul", "QLinearAdd"):
            if src.op_type == "Relu" and k.op_type == "QLinearAdd":
                src = producer[relu_input(k, q)]
            if src.op_type != k.op_type.removeprefix("QLinear"):
                raise fail(k, f"the export computes it with {src.op_type}")
            a, b = dq_inputs(k, src.input[0]), dq_inputs(k, src.input[1])
            new.append(helper.make_node(
                k.op_type, [*a, *b, ys, yzp], [q.output[0]],
                domain="com.microsoft", name=f"{q.name}/{k.op_type}",
            ))  # fmt: skip
        elif k.op_type == "QLinearConv" and src.op_type == "Relu":
            conv = producer[relu_input(k, q)]
            if conv.op_type != "Conv" or len(conv.input) != 3:
                raise fail(k, f"the export computes it with {conv.op_type}")
            x = conv.input[0]
            node = producer[x]
            while node.op_type == "Pad":  # a reflect pad copies grid values: still on the grid
                node = producer[node.input[0]]
            _, xs, xzp = dq_inputs(k, node.output[0])
            w, w_s, w_zp, bias = (k.consts[n] for n in ("w", "w_scale", "w_zero_point", "bias"))
            if not np.array_equal(dequantize(w, w_s, w_zp, 0), const(conv.input[1])):
                raise fail(k, "the reference's int8 weights are not this convolution's")
            b_float = bias.astype(np.float64) * float(const(xs)) * w_s.astype(np.float64)
            if not np.allclose(b_float, const(conv.input[2]), rtol=1e-3, atol=1e-6):
                raise fail(k, "the reference's int32 bias is not this convolution's")
            base = q.name.removesuffix("/QuantizeLinear")
            w_name, ws_name, wzp_name, b_name = (
                f"{base}/qlinearconv_{n}" for n in ("w", "w_scale", "w_zero_point", "bias")
            )
            added += [
                numpy_helper.from_array(v, n)
                for n, v in ((w_name, w), (ws_name, w_s), (wzp_name, w_zp), (b_name, bias))
            ]
            attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
            new += [
                helper.make_node(
                    "QuantizeLinear", [x, xs, xzp], [f"{base}/conv_input"], name=f"{base}/x"
                ),
                helper.make_node(
                    "QLinearConv",
                    [f"{base}/conv_input", xs, xzp, w_name, ws_name, wzp_name, ys, yzp, b_name],
                    [q.output[0]], name=f"{base}/qlinearconv", **attrs,
                ),
            ]  # fmt: skip
        else:
            raise fail(k, f"the export computes it with {src.op_type}")
        kernel = new[-1]
        for (data, _), as_uint8 in zip(FUSED_OPERANDS[k.op_type], k.uint8, strict=True):
            tensor = kernel.output[0] if data < 0 else kernel.input[data]
            if uint8.setdefault(tensor, as_uint8) != as_uint8:
                raise fail(k, f"{tensor!r} runs as int8 and as uint8 in the reference")
        replaced[q.name] = new
    nodes: list[Any] = []
    for node in graph.node:
        nodes += replaced.get(node.name, [node])
    # drop what the kernels made dead (the float ops and their dequantized inputs)
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    _switch_to_uint8(kept, {t for t, u in uint8.items() if u}, const, added)
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(added)
    for t in [t for t in graph.initializer if t.name not in needed and t not in added]:
        graph.initializer.remove(t)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    onnx.save(model, path)


#: (data input index or -1 for the output, zero-point input index) of every
#: quantized operand of the ops in an exported graph that carry one.
_QUANTIZED_OPERANDS = {
    "QuantizeLinear": ((-1, 2),),
    "DequantizeLinear": ((0, 2),),
    **FUSED_OPERANDS,
}


def _switch_to_uint8(nodes: list[Any], tensors: set[str], const: Any, added: list[Any]) -> None:
    """Make ``tensors`` uint8 (zero point + 128) for their producer and all readers.

    ``q_u8 = q_s8 + 128`` exactly (QuantizeLinear rounds before it adds the
    zero point), and every reader subtracts the shifted zero point, so only the
    integer type changes.
    """
    from onnx import numpy_helper

    shifted: dict[str, str] = {}

    def uint8_zero_point(name: str) -> str:
        if name not in shifted:
            value = np.asarray(const(name))
            if value.dtype != np.int8:
                raise RuntimeError(f"zero point {name!r} is {value.dtype}, expected int8")
            shifted[name] = f"{name}/uint8"
            added.append(
                numpy_helper.from_array(
                    (value.astype(np.int16) + 128).astype(np.uint8), shifted[name]
                )
            )
        return shifted[name]

    seen: set[str] = set()
    for node in nodes:
        for data, zp in _QUANTIZED_OPERANDS.get(node.op_type, ()):
            tensor = node.output[0] if data < 0 else node.input[data]
            if tensor in tensors:
                node.input[zp] = uint8_zero_point(node.input[zp])
                seen.add(tensor)
        if any(i in tensors for i in node.input) and node.op_type not in _QUANTIZED_OPERANDS:
            raise RuntimeError(f"{node.name} reads an int8 tensor that must become uint8")
    if seen != tensors:
        raise RuntimeError(f"tensors not found for the uint8 switch: {sorted(tensors - seen)}")


class OnnxGeneratorRuntime:
    """Our exported generator in onnxruntime (CPU), reference-exact arithmetic.

    Session options are chosen for parity first: the reference's fused int8
    kernels are already explicit in the exported graph (see
    :func:`_mirror_fused_kernels`); letting onnxruntime fuse more, or use its
    NCHWc convolution layout, would change roundings the reference does not
    change.  So only the basic rewrites run (constant folding, dead-node
    removal: arithmetic untouched) and ``session.disable_quant_qdq`` keeps every
    other quantize/dequantize pair where the reference has it.

    ``bit_exact=True`` also leaves the output convolution as the reference runs
    it (no space-to-depth rewrite): the output is then bit-identical to the
    reference's at 384x384, at ~20 % less throughput.
    """

    def __init__(
        self,
        generator: ConditionedAdaINGenerator | None = None,
        threads: int | None = None,
        bit_exact: bool = False,
    ) -> None:
        import onnxruntime as ort

        gen = generator if generator is not None else load_generator()
        emul = ("q" if gen.int8_emulation else "f") + ("x" if bit_exact else "")
        # the mirrored fused kernels are onnxruntime's choice: a new version may choose others
        path = (
            cache_dir()
            / "onnx"
            / f"generator-{model_version()}-e{EXPORT_VERSION}{emul}-ort{ort.__version__}.onnx"
        )
        if not path.is_file() or generator is not None:
            if generator is not None:  # a caller's module may differ from the cached one
                path = path.with_name(f"{path.stem}-custom-{os.getpid()}-{id(generator)}.onnx")
            log.info("exporting generator to %s", path)
            export_generator_onnx(gen, path, rewrite_output_conv=not bit_exact)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
        if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
            # Same policy as torch's OpenMP threads (the stylerec CLI sets it): idle threads
            # sleep instead of spinning, 0.078 s instead of 0.126 s per 384 px image at
            # load 3.6 on 2 cores (docs/benchmarks.md, issue 16a).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        n_threads = threads if threads is not None else torch.get_num_threads()
        opts.intra_op_num_threads = n_threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.path = path
        self.name = f"onnx-int8emul{'-exact' if bit_exact else ''}-cpu-t{n_threads}"

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

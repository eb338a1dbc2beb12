"""Distillation losses for the student generator, each weighted and measured on its own.

* ``pixel``: L1 between the student's and the teacher's render.
* ``perceptual``: L1 between the style predictor's MobileNetV2 trunk features of
  the two renders (three depths, each normalised by its teacher mean magnitude
  so no depth dominates).  The trunk is the shipped predictor, already in torch,
  so no extra network is downloaded.
* ``code``: 1 - cosine between the predictor's style codes of the two renders
  (the code is what the rest of stylerec uses to reason about styles).
* ``adversarial``: hinge loss of a conditional PatchGAN discriminator that sees
  (content, render) pairs and the style code (projection conditioning): the
  teacher's renders are real, the student's fake.  It pushes the student towards
  the teacher's texture statistics where an average (L1) would blur.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stylizer.networks import StylePredictor

#: trunk depths (after these inverted-residual blocks) used by the perceptual loss
FEATURE_BLOCKS = (2, 5, 12)
LOSS_NAMES = ("pixel", "perceptual", "code", "adversarial")


@dataclass(frozen=True)
class LossWeights:
    """Weight of each generator loss term (0 switches a term off, and skips its cost)."""

    pixel: float = 1.0
    perceptual: float = 0.2
    code: float = 1.0
    adversarial: float = 0.02

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return asdict(self)


class PredictorFeatures(nn.Module):
    """Frozen style predictor returning (trunk features at FEATURE_BLOCKS, style code)."""

    def __init__(self, predictor: StylePredictor) -> None:
        super().__init__()
        self.predictor = predictor.eval()
        for p in self.predictor.parameters():
            p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:  # noqa: D102
        p = self.predictor
        x = F.relu6(p.stem(images))
        feats = []
        for i, block in enumerate(p.blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        x = F.relu6(p.head(x)).mean(dim=(2, 3), keepdim=True)
        return feats, p.bottleneck(x).flatten(1)


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN (pix2pix-style 4x4 convs) with a projection of the style code.

    Input: content and render concatenated (6 channels); output: one logit per
    overlapping patch, ``conv(h) + <h, embed(code)>``.  Spectral norm keeps it
    Lipschitz so the hinge game stays stable at the small batches a CPU allows.
    """

    def __init__(self, base: int = 32, style_dim: int = 100) -> None:
        super().__init__()
        sn = nn.utils.spectral_norm
        self.body = nn.Sequential(
            sn(nn.Conv2d(6, base, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(base, base * 2, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(base * 2, base * 4, 4, 2, 1)), nn.LeakyReLU(0.2),
        )  # fmt: skip
        self.out = sn(nn.Conv2d(base * 4, 1, 3, 1, 1))
        self.embed = sn(nn.Linear(style_dim, base * 4))

    def forward(self, content: torch.Tensor, render: torch.Tensor, code: torch.Tensor) -> torch.Tensor:  # noqa: D102
        h = self.body(torch.cat([content * 2 - 1, render * 2 - 1], dim=1))
        proj = (h * self.embed(code)[:, :, None, None]).sum(dim=1, keepdim=True)
        return self.out(h) + proj


def perceptual_loss(feats_s: list[torch.Tensor], feats_t: list[torch.Tensor]) -> torch.Tensor:
    """Mean over depths of L1(student, teacher) / mean |teacher| at that depth."""
    terms = [(fs - ft).abs().mean() / (ft.abs().mean() + 1e-6) for fs, ft in zip(feats_s, feats_t, strict=True)]
    return torch.stack(terms).mean()


def code_loss(code_s: torch.Tensor, code_t: torch.Tensor) -> torch.Tensor:
    """1 - mean cosine of the two renders' style codes."""
    return 1.0 - F.cosine_similarity(code_s, code_t, dim=1).mean()


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge game."""
    return -fake_logits.mean()


def generator_losses(
    weights: LossWeights,
    features: PredictorFeatures,
    content: torch.Tensor,
    code: torch.Tensor,
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    discriminator: PatchDiscriminator | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total and each term's unweighted value (all terms measured, even at weight 0)."""
    terms: dict[str, torch.Tensor] = {"pixel": (student_out - teacher_out).abs().mean()}
    feats_s, code_s = features(student_out)
    with torch.no_grad():
        feats_t, code_t = features(teacher_out)
    terms["perceptual"] = perceptual_loss(feats_s, feats_t)
    terms["code"] = code_loss(code_s, code_t)
    if discriminator is not None:
        terms["adversarial"] = g_hinge_loss(discriminator(content, student_out, code))
    total = sum(getattr(weights, k) * v for k, v in terms.items() if getattr(weights, k) > 0)
    return total, {k: float(v.detach()) for k, v in terms.items()}  # type: ignore[return-value]
